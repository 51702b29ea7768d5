// The student's sandbox page: controls, heartbeat, results, comparison, mailbox and the inline trace.
import { setDelay } from "./api.js";
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
      renderComparison($("#comparison"), [latest.sync, latest.thread]);
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
