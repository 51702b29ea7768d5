// The student's sandbox page: controls, heartbeat, results, comparison, mailbox and the inline trace.
import { changeSink, setDelay } from "./api.js";
import { renderComparison } from "./comparison.js";
import { startHeartbeat } from "./heartbeat.js";
import { startMailbox } from "./mailbox.js";
import { ResultList } from "./results.js";
import { showTrace } from "./trace-frame.js";

const $ = (selector) => document.querySelector(selector);
const latest = {};
const traceCard = $("#trace-card");
const traceFrame = $("#trace-frame");

const results = new ResultList($("#results"), {
  onTrace: (traceId) => showTrace(traceCard, traceFrame, traceId),
  onComplete: (traceId, trace) => {
    latest[trace.mode] = trace;
    if (latest.sync && latest.thread) {
      $("#comparison-card").hidden = false;
      renderComparison($("#comparison"), [latest.sync, latest.thread, latest.pool, latest.queue].filter(Boolean));
    }
  },
});
const refreshMailbox = startMailbox($("#mailbox"), results);

const delay = $("#delay");
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

// Sink faults: each field sends its own change; the answer (or the error) is read out.
const faultStatus = $("#fault-status");
for (const field of document.querySelectorAll("[data-setting]")) {
  field.addEventListener("change", async () => {
    const kind = field.dataset.kind;
    let value = field.value;
    if (kind === "number") value = Number(value);
    if (kind === "int") value = Number.parseInt(value, 10);
    if (kind === "seed") value = value === "" ? null : Number.parseInt(value, 10);
    const { status, body } = await changeSink({ [field.dataset.setting]: value });
    faultStatus.textContent = status === 200 ? `Sink updated: ${field.dataset.setting} = ${body[field.dataset.setting]}` : body.error;
  });
}

for (const button of document.querySelectorAll("button[data-mode]")) {
  button.disabled = false; // the buttons start disabled: a click before this script ran would be lost
  button.addEventListener("click", async () => {
    const fields = { to: $("#to").value, name: $("#name").value };
    await results.run(button.dataset.mode, fields);
    refreshMailbox();
  });
}

startHeartbeat($("#heartbeat"), $("#heartbeat-status"));
$("#trace-close").addEventListener("click", () => { traceCard.hidden = true; traceFrame.src = "about:blank"; });
