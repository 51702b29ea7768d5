// The student's sandbox page: controls, heartbeat, results, the last comparison, mailbox and the inline trace.
import { changeSink, getJSON, setDelay } from "./api.js";
import { newComparisonId, renderComparison } from "./comparison.js";
import { startHeartbeat } from "./heartbeat.js";
import { startMailbox } from "./mailbox.js";
import { ResultList } from "./results.js";
import { startStats } from "./stats.js";
import { showTrace } from "./trace-frame.js";

const $ = (selector) => document.querySelector(selector);
const traceCard = $("#trace-card");
const traceFrame = $("#trace-frame");

const results = new ResultList($("#results"), {
  onTrace: (traceId) => showTrace(traceCard, traceFrame, traceId),
});
const refreshMailbox = startMailbox($("#mailbox"), results);
startStats($("#delivery-stats"));

const delay = $("#delay");
if (delay) {
  const delayValue = $("#delay-value");
  const delayStatus = $("#delay-status");
  let delayTimer = null;
  delay.addEventListener("input", () => {
    delayValue.textContent = `${Number(delay.value).toFixed(1)} s`;
    clearTimeout(delayTimer);
    delayTimer = setTimeout(async () => {
      const { status, body } = await setDelay(Number(delay.value));
      delayStatus.textContent = status === 200 ? `The sink now waits ${body.delay_s.toFixed(1)} s.` : body.error;
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
  });
}

// The page is rendered from the sink's faults; whether it listens is read here, since it can change at any time.
const listening = $("#fault-listening");
if (listening) {
  getJSON("/api/sink").then(({ status, body }) => { if (status === 200) listening.checked = body.listening; }, () => {});
}

const fields = () => ({ to: $("#to").value, name: $("#name").value });

for (const button of document.querySelectorAll("button[data-mode]")) {
  button.disabled = false; // the buttons start disabled: a click before this script ran would be lost
  button.addEventListener("click", async () => {
    await results.run(button.dataset.mode, fields());
    refreshMailbox();
  });
}

// "Send both": the same email by the blocking route, then (once that send is over, so the two never share the
// sink) by the thread route, under one fresh comparison id. The card shows those two sends and nothing else.
const sendBoth = $("#send-both");
const comparisonCard = $("#comparison-card");
const comparisonStatus = $("#comparison-status");
sendBoth.disabled = false;
sendBoth.addEventListener("click", async () => {
  if (sendBoth.getAttribute("aria-busy") === "true") return;
  sendBoth.disabled = true; // set before anything awaits: a double click sends once
  sendBoth.setAttribute("aria-busy", "true");
  const comparison = newComparisonId();
  const shared = { ...fields(), comparison };
  try {
    comparisonStatus.textContent = "Sending by the blocking route…";
    const blocking = await results.run("sync", shared);
    comparisonStatus.textContent = "Sending by the thread route…";
    const threaded = await results.run("thread", shared);
    refreshMailbox();
    const traces = [blocking, threaded].map((id) => id && results.trace(id));
    if (traces.every(Boolean)) {
      comparisonCard.hidden = false;
      renderComparison($("#comparison"), traces, JSON.parse($("#results").dataset.labels || "{}"));
      comparisonStatus.textContent = "Done: the two sends of this comparison are on the time axis below.";
    } else {
      comparisonStatus.textContent = "One of the two sends has no complete trace, so there is nothing to compare.";
    }
  } finally {
    sendBoth.removeAttribute("aria-busy");
    sendBoth.disabled = false;
  }
});

startHeartbeat($("#heartbeat"), $("#heartbeat-status"));
$("#trace-close").addEventListener("click", () => { traceCard.hidden = true; traceFrame.src = "about:blank"; });
