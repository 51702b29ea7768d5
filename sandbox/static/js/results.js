// One entry per send: a running stopwatch until the answer comes, then the response time, the time until the
// sink accepted the email (from the trace), and a way to step through the trace.
import { completeTrace, formatMs, send } from "./api.js";

export class ResultList {
  constructor(list, { onTrace, onComplete } = {}) {
    this.list = list;
    this.onTrace = onTrace;
    this.onComplete = onComplete;
    this.labels = JSON.parse(list.dataset.labels || "{}"); // the server's names for the modes
    this.sends = new Map(); // trace id -> {clickedAt, elapsedMs, body, trace}
  }

  async run(mode, fields) {
    const item = document.createElement("li");
    item.className = "result pending";
    item.dataset.mode = mode;
    const title = document.createElement("strong");
    title.textContent = this.labels[mode] || mode;
    const response = line("Response", "0 ms");
    response.value.classList.add("stopwatch");
    const accepted = line("Email accepted", "waiting…");
    item.append(title, response.row, accepted.row);
    this.list.prepend(item);

    const started = performance.now();
    let ticking = true;
    const tick = () => {
      if (!ticking) return;
      response.value.textContent = formatMs(performance.now() - started);
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);

    let result;
    try {
      result = await send(mode, fields);
    } catch (error) {
      ticking = false;
      item.className = "result failed";
      response.value.textContent = `no answer (${error})`;
      return null;
    }
    ticking = false;
    const { status, body, elapsedMs } = result;
    item.classList.remove("pending");
    item.dataset.status = String(status);
    item.dataset.responseMs = elapsedMs.toFixed(1);
    response.value.textContent = `${formatMs(elapsedMs)} (HTTP ${status}${body.status ? ", " + body.status : ""})`;
    if (status >= 400) {
      item.classList.add("failed");
      accepted.value.textContent = body.error || "failed";
    }
    if (!body.trace_id) return null;
    item.dataset.traceId = body.trace_id;
    this.sends.set(body.trace_id, { ...result, mode });
    const actions = document.createElement("p");
    actions.className = "result-actions";
    const step = document.createElement("button");
    step.type = "button";
    step.textContent = "Step through it";
    step.addEventListener("click", () => this.onTrace && this.onTrace(body.trace_id));
    const link = document.createElement("a");
    link.href = `/traces/${body.trace_id}`;
    link.textContent = "Open the trace";
    actions.append(step, " ", link);
    item.append(actions);

    const trace = await completeTrace(body.trace_id);
    if (trace) {
      this.sends.get(body.trace_id).trace = trace;
      const failure = (trace.events.find((e) => e.kind === "worker.failed" || e.kind === "smtp.failed") || {}).details;
      if (trace.accepted_ms !== null) {
        const fromClick = this.acceptedFromClick(body.trace_id);
        item.dataset.acceptedMs = fromClick.toFixed(1);
        accepted.value.textContent = `${formatMs(fromClick)} after the click`;
      } else if (failure) {
        item.classList.add("failed");
        accepted.value.textContent = `not delivered: ${failure.error}`;
      }
      if (this.onComplete) this.onComplete(body.trace_id, trace);
    }
    return body.trace_id;
  }

  // The trace counts from the moment the request arrived; the click came a little earlier. Half of what the
  // browser measured beyond the server's own response time is the request's way in.
  acceptedFromClick(traceId) {
    const sent = this.sends.get(traceId);
    if (!sent || !sent.trace || sent.trace.accepted_ms === null) return null;
    const wayIn = Math.max(0, (sent.elapsedMs - sent.trace.response_ms) / 2);
    return wayIn + sent.trace.accepted_ms;
  }
}

function line(label, initial) {
  const row = document.createElement("p");
  row.className = "result-line";
  const name = document.createElement("span");
  name.className = "result-label";
  name.textContent = `${label}: `;
  const value = document.createElement("span");
  value.className = "result-value";
  value.textContent = initial;
  row.append(name, value);
  return { row, value };
}
