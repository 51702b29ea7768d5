// A lesson's live sandbox: "Run it" runs the lesson's scenario step by step (see scenario.js), shows each send's
// result, the ping report of a step that pings, the comparison of a step that compares, and the last trace.
import { renderComparison } from "./comparison.js";
import { startHeartbeat } from "./heartbeat.js";
import { pingAfterMs, renderPingReport, sendWithPing } from "./ping-report.js";
import { ResultList } from "./results.js";
import { describeSettings, runScenario } from "./scenario.js";
import { showTrace } from "./trace-frame.js";

const panel = document.querySelector("[data-scenario]");
const scenario = JSON.parse(panel.dataset.scenario);
const kinds = JSON.parse(panel.dataset.kinds);
const serverKind = panel.dataset.server;
const traceCard = document.querySelector("#trace-card");
const traceFrame = document.querySelector("#trace-frame");
const status = document.querySelector("#run-status");
const pingReport = document.querySelector("#ping-report");
const comparison = document.querySelector("#comparison");
const resultList = document.querySelector("#results");
const results = new ResultList(resultList, {
  onTrace: (traceId) => showTrace(traceCard, traceFrame, traceId, kinds),
});
const say = (text) => { status.textContent = text; };

async function send(mode, fields, step, index) {
  const options = { note: scenario.steps.length > 1 ? `Step ${index + 1}` : "" };
  if (!step.ping) return results.run(mode, fields, options);
  const outcome = await sendWithPing(results, mode, fields, pingAfterMs(step.sink.delay_s), options);
  renderPingReport(pingReport, outcome, serverKind);
  return outcome.traceId;
}

function compare(step, traceIds) {
  if (!step.compare || !comparison) return;
  const traces = traceIds.map((id) => results.trace(id)).filter(Boolean);
  if (traces.length < 2) return;
  comparison.hidden = false;
  renderComparison(comparison, traces, JSON.parse(resultList.dataset.labels || "{}"));
}

const run = document.querySelector("#run-it");
run.addEventListener("click", async () => {
  if (run.disabled) return;
  run.disabled = true; // before anything awaits: a double click runs once
  let outcome = null;
  try {
    outcome = await runScenario(scenario, {
      send,
      say,
      embeddedSink: panel.dataset.embeddedSink === "yes",
      onStepDone: compare,
    });
  } catch (error) {
    say(`The run stopped: ${error.message || error}`);
  }
  run.disabled = false;
  if (!outcome) return;
  const back = outcome.restored ? ` Your sink settings are back as they were: ${describeSettings(outcome.restored)}.` :
    outcome.saved ? " Your sink settings could not be put back; set them again on the sandbox page." : "";
  say(`Done. Step through the last trace below, or any result above.${back}`);
  const last = outcome.traceIds[outcome.traceIds.length - 1];
  if (last) showTrace(traceCard, traceFrame, last, kinds);
});

const copy = document.querySelector("#copy-command");
if (copy) {
  const command = document.querySelector("#other-command");
  copy.addEventListener("click", async () => {
    command.select();
    try {
      await navigator.clipboard.writeText(command.value);
      copy.textContent = "Copied";
    } catch (error) {
      copy.textContent = "Selected: press Ctrl+C";
    }
  });
}

run.disabled = false; // enabled only once the click has somewhere to go
startHeartbeat(document.querySelector("#heartbeat"), document.querySelector("#heartbeat-status"));
