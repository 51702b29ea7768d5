// The student's sandbox page: controls, the verdict and results under them, heartbeat, mailbox and the inline trace.
// What the student did here (results, the last comparison, open panels, the open trace) is kept in the tab's
// session storage, so Back from a trace or a message finds the page as it was left.
import { changeSink } from "./api.js";
import { newComparisonId, renderComparison } from "./comparison.js";
import { startDesk } from "./desk.js";
import { startHeartbeat } from "./heartbeat.js";
import { startMailbox } from "./mailbox.js";
import { ResultList } from "./results.js";
import { activeFaults, watchSink } from "./sink-settings.js";
import { startStats } from "./stats.js";
import { showTrace } from "./trace-frame.js";
import { comparisonVerdict, sendVerdict } from "./verdict.js";

const $ = (selector) => document.querySelector(selector);
const PAGE_KEY = "sandbox:page"; // {verdict, comparison: [trace id, trace id], trace, open: {panel id: bool}}
const traceCard = $("#trace-card");
const traceFrame = $("#trace-frame");
const verdict = $("#verdict");
const comparison = $("#comparison");
const labels = JSON.parse($("#results").dataset.labels || "{}");

function remembered() {
  try {
    return JSON.parse(sessionStorage.getItem(PAGE_KEY) || "{}");
  } catch (error) {
    return {};
  }
}

function remember(changes) {
  try {
    sessionStorage.setItem(PAGE_KEY, JSON.stringify({ ...remembered(), ...changes }));
  } catch (error) {
    // Storage switched off: the page works, it just forgets on Back.
  }
}

function openTrace(traceId) {
  remember({ trace: traceId });
  showTrace(traceCard, traceFrame, traceId);
}

const results = new ResultList($("#results"), { onTrace: openTrace, storageKey: "sandbox:results" });
const refreshMailbox = startMailbox($("#mailbox"), results);
startStats($("#delivery-stats"));

// The verdict: a headline and its numbers, set once per send or comparison, so a screen reader hears it once.
function show({ headline, detail }) {
  const strong = document.createElement("strong");
  strong.textContent = headline;
  verdict.replaceChildren(strong, detail ? ` ${detail}` : "");
}

function say(words) {
  show(words);
  remember({ verdict: words });
  const box = verdict.getBoundingClientRect();
  if (box.top < 0 || box.bottom > window.innerHeight) verdict.scrollIntoView({ block: "nearest" });
}

function showComparison(ids) {
  const traces = ids.map((id) => results.trace(id));
  if (!traces.every(Boolean)) return false;
  comparison.hidden = false;
  renderComparison(comparison, traces, labels);
  return true;
}

// Sink settings: the "Sink:" line, the delay slider and the fault fields follow the server (another tab or a lesson
// may change them); a field being edited is left alone. The faults panel opens when a fault is on.
const delay = $("#delay");
const delayValue = $("#delay-value");
const faultsPanel = $("#faults-panel");
const faultsBadge = $("#faults-active");
const showDelay = (seconds) => {
  delayValue.textContent = `${Number(seconds).toFixed(1)} s`;
  delay.setAttribute("aria-valuetext", `${Number(seconds).toFixed(1)} seconds`);
};
let faultsWereOn = 0;
const sinkLine = $("#sink-now");
const refreshSink = sinkLine ? watchSink(sinkLine, (settings) => {
  if (delay && document.activeElement !== delay) {
    delay.value = String(settings.delay_s);
    showDelay(settings.delay_s);
  }
  for (const field of document.querySelectorAll("[data-setting]")) {
    if (field === document.activeElement) continue;
    const value = settings[field.dataset.setting];
    if (field.dataset.kind === "bool") field.checked = Boolean(value);
    else field.value = value === null || value === undefined ? "" : String(value);
  }
  const on = activeFaults(settings);
  if (faultsBadge) {
    faultsBadge.hidden = on === 0;
    faultsBadge.textContent = `${on} on`;
  }
  if (faultsPanel && on > 0 && faultsWereOn === 0) faultsPanel.open = true;
  faultsWereOn = on;
}) : () => {};

if (delay) {
  const delayStatus = $("#delay-status");
  let delayTimer = null;
  delay.addEventListener("input", () => {
    showDelay(delay.value);
    clearTimeout(delayTimer);
    delayTimer = setTimeout(async () => {
      const { status, body } = await changeSink({ delay_s: Number(delay.value) });
      delayStatus.textContent = status === 200 ? `The sink now waits ${body.delay_s.toFixed(1)} s.` : body.error;
      refreshSink();
    }, 150);
  });
}

// Sink faults: each field sends its own change; the answer (or the error) is read out.
const faultStatus = $("#fault-status");
for (const field of document.querySelectorAll("[data-setting]")) {
  field.addEventListener("change", async () => {
    const kind = field.dataset.kind;
    let value = field.value;
    if (kind === "number") value = Number(value);
    if (kind === "int") value = Number.parseInt(value, 10);
    if (kind === "seed") value = value === "" ? null : Number.parseInt(value, 10);
    if (kind === "bool") value = field.checked;
    const { status, body } = await changeSink({ [field.dataset.setting]: value });
    faultStatus.textContent = status === 200 ? `Sink updated: ${field.dataset.setting} = ${body[field.dataset.setting]}` : body.error;
    refreshSink();
  });
}

// Panels marked data-remember stay open or closed across Back.
for (const panel of document.querySelectorAll("details[data-remember]")) {
  const open = (remembered().open || {})[panel.id];
  if (open !== undefined) panel.open = open;
  panel.addEventListener("toggle", () => remember({ open: { ...(remembered().open || {}), [panel.id]: panel.open } }));
}

const fields = () => ({ to: $("#to").value, name: $("#name").value });

// A button is busy from its click until its answer: a double click sends once.
async function busy(button, work) {
  if (button.getAttribute("aria-busy") === "true") return;
  button.setAttribute("aria-busy", "true");
  button.disabled = true; // set before anything awaits
  try {
    await work();
  } finally {
    button.removeAttribute("aria-busy");
    button.disabled = false;
  }
}

for (const button of document.querySelectorAll("button[data-mode]")) {
  button.disabled = false; // the buttons start disabled: a click before this script ran would be lost
  button.addEventListener("click", () => busy(button, async () => {
    const mode = button.dataset.mode;
    const label = labels[mode] || mode;
    const record = await results.runRecord(mode, fields());
    refreshMailbox();
    if (record.trace) say(sendVerdict(label, record.status, record.trace));
    else if (record.status === undefined || record.status === 0) say({ headline: `${label}: the browser got no answer.` });
    else {
      const why = record.traceId ? "Its trace could not be read: see its result below." : "No trace was recorded.";
      say({ headline: `${label}: HTTP ${record.status}.`, detail: record.body.error || why });
    }
  }));
}

// "Send both": the same email by the blocking route, then (once that send is over, so the two never share the
// sink) by the thread route, under one fresh comparison id. The comparison shows those two sends and nothing else.
const sendBoth = $("#send-both");
sendBoth.disabled = false;
sendBoth.addEventListener("click", () => busy(sendBoth, async () => {
  const shared = { ...fields(), comparison: newComparisonId() };
  const blocking = await results.run("sync", shared);
  const threaded = await results.run("thread", shared);
  refreshMailbox();
  const pair = [blocking, threaded];
  if (pair.every(Boolean) && showComparison(pair)) {
    remember({ comparison: pair });
    const [b, t] = pair.map((id) => results.summary(id));
    say(comparisonVerdict({ blocking: labels.sync || "sync", threaded: labels.thread || "thread" }, b, t));
  } else {
    say({ headline: "Nothing to compare.", detail: "One of the two sends has no complete trace: see its result below." });
  }
}));

// Back from a trace or a message: the results, then what was shown with them.
const state = remembered();
if (state.verdict && state.verdict.headline) show(state.verdict);
results.restore().then(() => {
  if (state.comparison) showComparison(state.comparison);
});
if (state.trace) showTrace(traceCard, traceFrame, state.trace, undefined, { focus: false });

function closeTrace() {
  traceCard.hidden = true;
  traceFrame.src = "about:blank";
  remember({ trace: null });
}

startHeartbeat($("#heartbeat"), $("#heartbeat-status"));
$("#trace-close").addEventListener("click", closeTrace);

// A desk started afresh has no traces, mail or changed settings left: the page forgets what it showed of them.
const firstVerdict = verdict.textContent;
startDesk($("#desk"), () => {
  results.clear();
  closeTrace();
  comparison.hidden = true;
  comparison.replaceChildren();
  verdict.textContent = firstVerdict;
  remember({ verdict: null, comparison: null });
  refreshSink();
  refreshMailbox();
});
