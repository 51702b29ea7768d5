// One entry per send: a running stopwatch until the answer comes, then the response time on both clocks, when the
// sink accepted the email (or why it was not delivered) from the trace, and a way to step through the trace.
//
// Two clocks, labelled: the server's (`response_ms` in its answer, the number the trace uses, counted from the
// moment the web server had the request) and the browser's own (which adds the network and the browser).
import { completeTrace, formatMs, relativeTo, send } from "./api.js";

const FAILURE_KINDS = ["worker.failed", "smtp.failed"];

export class ResultList {
  constructor(list, { onTrace, onComplete } = {}) {
    this.list = list;
    this.onTrace = onTrace;
    this.onComplete = onComplete;
    this.labels = JSON.parse(list.dataset.labels || "{}"); // the server's names for the modes
    this.sends = new Map(); // trace id -> {clickedAt, elapsedMs, body, mode, trace}
  }

  // `note` (optional) goes before the mode's name, e.g. the lesson step the send belongs to; `base` is the origin of
  // the server to send through ("" for this page's own).
  async run(mode, fields, { note = "", base = "" } = {}) {
    const item = document.createElement("li");
    item.className = "result pending";
    item.dataset.mode = mode;
    if (fields.comparison) item.dataset.comparison = fields.comparison;
    const title = document.createElement("strong");
    title.textContent = `${note ? note + " · " : ""}${this.labels[mode] || mode}`;
    const response = line("Response", "0 ms");
    response.value.classList.add("stopwatch");
    const accepted = line("Email accepted", "waiting…");
    item.append(title, response.row, accepted.row);
    this.list.prepend(item);

    const started = performance.now();
    let ticking = true;
    const tick = () => {
      if (!ticking) return;
      response.value.textContent = `${formatMs(performance.now() - started)} in your browser…`;
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);

    let result;
    try {
      result = await send(mode, fields, base);
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
    item.dataset.browserMs = elapsedMs.toFixed(1);
    const serverMs = typeof body.response_ms === "number" ? body.response_ms : null;
    if (serverMs !== null) item.dataset.responseMs = serverMs.toFixed(1);
    response.value.textContent = `${twoClocks(serverMs, elapsedMs)} (HTTP ${status}${body.status ? ", " + body.status : ""})`;
    if (status >= 400) {
      item.classList.add("failed");
      accepted.value.textContent = body.error || "failed";
    }
    if (!body.trace_id) return null;
    item.dataset.traceId = body.trace_id;
    this.sends.set(body.trace_id, { ...result, mode });
    item.append(this.actions(body.trace_id));

    const trace = await completeTrace(body.trace_id);
    if (trace) {
      this.sends.get(body.trace_id).trace = trace;
      const outcome = describeOutcome(trace);
      if (outcome.acceptedMs !== null) item.dataset.acceptedMs = outcome.acceptedMs.toFixed(1);
      if (outcome.failed) item.classList.add("failed");
      if (outcome.text) accepted.value.textContent = outcome.text;
      if (this.onComplete) this.onComplete(body.trace_id, trace);
    }
    return body.trace_id;
  }

  actions(traceId) {
    const actions = document.createElement("p");
    actions.className = "result-actions";
    const step = document.createElement("button");
    step.type = "button";
    step.textContent = "Step through it";
    step.addEventListener("click", () => this.onTrace && this.onTrace(traceId));
    const link = document.createElement("a");
    link.href = `/traces/${encodeURIComponent(traceId)}`;
    link.textContent = "Open the trace";
    actions.append(step, " ", link);
    return actions;
  }

  // When the sink accepted the email, in ms from the moment the server had the request (the trace's clock).
  acceptedMs(traceId) {
    const sent = this.sends.get(traceId);
    if (!sent || !sent.trace || sent.trace.accepted_ms === null) return null;
    return sent.trace.accepted_ms;
  }

  mode(traceId) {
    const sent = this.sends.get(traceId);
    return sent ? sent.mode : null;
  }

  trace(traceId) {
    const sent = this.sends.get(traceId);
    return sent ? sent.trace || null : null;
  }
}

// "2.01 s (server) · 2.03 s in your browser (+18.0 ms network and browser)"
export function twoClocks(serverMs, browserMs) {
  const browser = `${formatMs(browserMs)} in your browser`;
  if (serverMs === null) return `${browser} (the server gave no time)`;
  const extra = browserMs - serverMs;
  const difference = extra >= 0 ? `+${formatMs(extra)} network and browser` : "the two clocks agree to within their precision";
  return `${formatMs(serverMs)} (server) · ${browser} (${difference})`;
}

// The email's fate, from the trace alone: accepted when, or not delivered why and when; each time both from the
// moment the server had the request and against the moment the answer left.
export function describeOutcome(trace) {
  const answer = trace.response_ms;
  if (trace.accepted_ms !== null) {
    const order = relativeTo(trace.accepted_ms, answer, "the answer left");
    return {
      acceptedMs: trace.accepted_ms,
      failed: false,
      text: `${formatMs(trace.accepted_ms)} after the server had the request${order ? ` (${order})` : ""}`,
    };
  }
  const failures = trace.events.filter((e) => FAILURE_KINDS.includes(e.kind));
  const last = failures[failures.length - 1];
  if (!last) return { acceptedMs: null, failed: false, text: "" };
  const attempts = trace.events.filter((e) => e.kind === "attempt.started").length;
  const order = relativeTo(last.t_ms, answer, "the answer left");
  const tries = attempts > 1 ? `, after ${attempts} attempts` : "";
  const error = String(last.details.error || "failed").replace(/\.+$/, "");
  const fate = trace.outcome === "unknown" ? "the app cannot tell whether it arrived" : "not delivered";
  return {
    acceptedMs: null,
    failed: true,
    text: `${fate}: ${error}. The send gave up ${formatMs(last.t_ms)} after the server had the request${order ? ` (${order})` : ""}${tries}.`,
  };
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
