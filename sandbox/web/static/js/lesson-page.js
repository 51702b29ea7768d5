// A lesson's live sandbox: "Run it" runs the lesson's scenario step by step (see scenario.js), shows each send's
// result, the ping report of a step that pings, the comparison of a step that compares, and the last trace.
import { getJSON } from "./api.js";
import { renderComparison } from "./comparison.js";
import { startHeartbeat } from "./heartbeat.js";
import { pingAfterMs, renderPingReport, sendWithPing } from "./ping-report.js";
import { ResultList } from "./results.js";
import { runScenario } from "./scenario.js";
import { watchSink } from "./sink-settings.js";
import { startStats } from "./stats.js";
import { startShutdownDemo } from "./shutdown-demo.js";
import { showTrace } from "./trace-frame.js";

const panel = document.querySelector("[data-scenario]");
const scenario = JSON.parse(panel.dataset.scenario);
const kinds = JSON.parse(panel.dataset.kinds);
const serverKind = panel.dataset.server;
const servers = JSON.parse(panel.dataset.servers); // kind -> origin ("" for this page's server, null if not run)
const traceCard = document.querySelector("#trace-card");
const traceFrame = document.querySelector("#trace-frame");
const status = document.querySelector("#run-status");
const pingReport = document.querySelector("#ping-report");
const comparison = document.querySelector("#comparison");
const resultList = document.querySelector("#results");
const results = new ResultList(resultList, {
  onTrace: (traceId) => showTrace(traceCard, traceFrame, traceId, kinds),
  storageKey: `lesson:${location.pathname}:results`, // Back from a trace finds this lesson's results again
});
results.restore();
const say = (text) => { status.textContent = text; };

// The sink as it is now: the visitor's own settings, the run's while it runs, and the visitor's again after it. Read
// again at each step of a run and at its end, not only every two seconds.
const sinkLine = document.querySelector("#sink-now");
const refreshSink = sinkLine ? watchSink(sinkLine) : () => {};

async function send(mode, fields, step, index) {
  refreshSink(); // the step has just set its sink
  const kind = step.server || serverKind;
  const base = servers[kind];
  if (base === null || base === undefined) throw new Error(`this sandbox runs no ${kind} server for this step`);
  const where = [scenario.steps.length > 1 ? `Step ${index + 1}` : "", kind !== serverKind ? `${kind} server` : ""];
  const options = { note: where.filter(Boolean).join(", "), base };
  if (!step.ping) return results.run(mode, fields, options);
  const outcome = await sendWithPing(results, mode, fields, pingAfterMs(step.sink.delay_s), options);
  renderPingReport(pingReport, outcome, kind);
  return outcome.traceId;
}

const stepTraces = []; // the trace ids of each step of the current run

function stepDone(step, traceIds) {
  stepTraces.push(traceIds);
  compare(step, traceIds);
}

function compare(step, traceIds) {
  if (!step.compare || !comparison) return;
  const traces = traceIds.map((id) => results.trace(id)).filter(Boolean);
  if (traces.length < 2) return;
  comparison.hidden = false;
  renderComparison(comparison, traces, JSON.parse(resultList.dataset.labels || "{}"));
}

// The prediction comes first: "Run it" waits for one, and the run's verdict is shown beside it afterwards.
const prediction = document.querySelector("#prediction");
const verdict = document.querySelector("#verdict");
const chosen = () => prediction.querySelector("input[name=prediction]:checked");
let running = false;

async function showVerdict(traceIds) {
  const guess = chosen();
  const query = encodeURIComponent(traceIds.join(","));
  const { status, body } = await getJSON(`/api/lessons/${encodeURIComponent(prediction.dataset.slug)}/verdict?traces=${query}`);
  verdict.replaceChildren();
  const yours = document.createElement("p");
  yours.textContent = `You predicted: ${guess.parentElement.textContent.trim()}`;
  const outcome = document.createElement("p");
  if (status !== 200) {
    outcome.textContent = `The run could not be judged: ${body.error}`;
  } else if (body.answer === null) {
    outcome.textContent = `The run cannot decide: ${body.evidence}`;
  } else {
    const right = body.answer === guess.value;
    verdict.dataset.answer = body.answer;
    verdict.dataset.correct = String(right);
    outcome.textContent = `${right ? "The run agrees" : "The run shows otherwise"}: ${body.answer_text}. ${body.evidence}`;
  }
  verdict.append(yours, outcome);
  verdict.hidden = false;
}

const run = document.querySelector("#run-it");
prediction.addEventListener("change", () => {
  if (!running) run.disabled = !chosen();
});
run.addEventListener("click", async () => {
  if (run.disabled || !chosen()) return;
  run.disabled = true; // before anything awaits: a double click runs once
  running = true;
  verdict.hidden = true;
  stepTraces.length = 0;
  let outcome = null;
  try {
    outcome = await runScenario(scenario, {
      send,
      say,
      embeddedSink: panel.dataset.embeddedSink === "yes",
      onStepDone: stepDone,
    });
  } catch (error) {
    say(`The run stopped: ${error.message || error}`);
  }
  running = false;
  run.disabled = !chosen();
  refreshSink(); // the visitor's own settings are back
  if (!outcome) return;
  const back = outcome.restored ? ` Your sink settings are back as they were: ${outcome.restored.description}.` :
    outcome.saved ? " Your sink settings could not be put back; set them again on the sandbox page." : "";
  const appBack = outcome.appRestored ? "" : " The app's settings could not be put back: see GET /api/app.";
  const { quizMode, quizStep } = panel.dataset;
  const which = [quizMode ? `the ${quizMode} send` : "the send", quizStep ? ` of step ${quizStep}` : "", " that answered last"].join("");
  say(`Done. Below is the trace of ${which}: step through it, or open any result above.${back}${appBack}`);
  // The lesson's quiz is about one send of its quiz_step and quiz_mode (where it names them): the one answered last,
  // which in a burst is the one that waited longest for its answer.
  const candidates = quizStep ? stepTraces[Number(quizStep) - 1] || [] : outcome.traceIds;
  const quizzed = candidates.filter((id) => !quizMode || results.mode(id) === quizMode);
  const answeredAt = (id) => { const sent = results.sends.get(id); return sent ? sent.clickedAt + sent.elapsedMs : 0; };
  const last = quizzed.reduce((latest, id) => (latest === undefined || answeredAt(id) >= answeredAt(latest) ? id : latest), undefined);
  if (last) showTrace(traceCard, traceFrame, last, kinds);
  if (outcome.traceIds.length) await showVerdict(outcome.traceIds);
});

run.disabled = !chosen(); // enabled once the click has somewhere to go and a prediction is made
startHeartbeat(document.querySelector("#heartbeat"), document.querySelector("#heartbeat-status"));
startStats(document.querySelector("#delivery-stats"));
const shutdownButton = document.querySelector("#run-shutdown-demo");
if (shutdownButton) {
  startShutdownDemo(shutdownButton, document.querySelector("#shutdown-status"), document.querySelector("#shutdown-results"));
}
