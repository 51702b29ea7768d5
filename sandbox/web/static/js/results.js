// One entry per send: a running stopwatch until the answer comes, then the response time on both clocks, when the
// sink accepted the email (or why it was not delivered) from the trace, and a way to step through the trace.
//
// Two clocks, labelled: the server's (`response_ms` in its answer, the number the trace uses, counted from the
// moment the web server had the request) and the browser's own (which adds the network and the browser).
//
// With a `storageKey`, every entry is kept in the tab's session storage as it changes and drawn again when the page
// is opened anew (Back from a trace or a message): a send still under way then is followed to its end again.
import { completeTrace, formatMs, relativeTo, send } from "./api.js";

// The events that end an email without a 250: a worker's or a send's failure, and a view's task that never sent.
const FAILURE_KINDS = ["worker.failed", "smtp.failed", "task.unsent"];
const KEPT = 30; // entries kept in session storage, newest first

export class ResultList {
  constructor(list, { onTrace, storageKey } = {}) {
    this.list = list;
    this.onTrace = onTrace;
    this.storageKey = storageKey;
    this.labels = JSON.parse(list.dataset.labels || "{}"); // the server's names for the modes
    this.sends = new Map(); // trace id -> {clickedAt, elapsedMs, body, mode, trace}
    this.records = []; // what is saved: one plain object per entry, newest first
  }

  // Draw the entries saved by an earlier visit of this page in this tab; resolves once each of their traces is done.
  restore() {
    if (!this.storageKey) return Promise.resolve();
    let saved = [];
    try {
      saved = JSON.parse(sessionStorage.getItem(this.storageKey) || "[]");
    } catch (error) {
      saved = [];
    }
    const waits = [];
    for (const record of saved.slice().reverse()) {
      if (record.status === undefined) continue; // left before its answer came: nothing known to show
      const entry = this.entry(record);
      entry.answered();
      if (record.traceId) {
        this.sends.set(record.traceId, { mode: record.mode, body: record.body, elapsedMs: record.elapsedMs, trace: record.trace });
        if (record.trace) entry.completed(record.trace);
        else waits.push(this.follow(record, entry));
      }
    }
    return Promise.all(waits);
  }

  // Forget every entry (the desk was started afresh: their traces are gone).
  clear() {
    this.records = [];
    this.sends.clear();
    this.list.replaceChildren();
    this.save();
  }

  save() {
    if (!this.storageKey) return;
    try {
      sessionStorage.setItem(this.storageKey, JSON.stringify(this.records.slice(0, KEPT)));
    } catch (error) {
      // Storage full or switched off: the entries stay on this page, they are just not kept.
    }
  }

  // `note` (optional) goes before the mode's name, e.g. the lesson step the send belongs to; `base` is the origin of
  // the server to send through ("" for this page's own). Resolves with the trace id once the trace is complete.
  async run(mode, fields, options = {}) {
    return (await this.runRecord(mode, fields, options)).traceId || null;
  }

  // The same, resolving with the send's record: its status, body and (once complete) its trace's summary.
  async runRecord(mode, fields, { note = "", base = "" } = {}) {
    const record = { mode, note, comparison: fields.comparison || null };
    const entry = this.entry(record);
    const started = performance.now();
    let ticking = true;
    const tick = () => {
      if (!ticking) return;
      entry.response.textContent = `${formatMs(performance.now() - started)} in your browser…`;
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);

    let result;
    try {
      result = await send(mode, fields, base);
    } catch (error) {
      ticking = false;
      Object.assign(record, { status: 0, body: { error: `no answer (${error})` }, elapsedMs: performance.now() - started });
      entry.answered();
      this.save();
      return record;
    }
    ticking = false;
    const { status, body, elapsedMs } = result;
    Object.assign(record, { status, body, elapsedMs, traceId: body.trace_id || null });
    entry.answered();
    this.save();
    if (!body.trace_id) return record;
    this.sends.set(body.trace_id, { ...result, mode });
    await this.follow(record, entry);
    return record;
  }

  // Wait for the trace of an answered send, then show the email's fate from it.
  async follow(record, entry) {
    const trace = await completeTrace(record.traceId);
    if (!trace) {
      entry.untraced();
      return;
    }
    const sent = this.sends.get(record.traceId);
    if (sent) sent.trace = trace;
    record.trace = keptTrace(trace);
    entry.completed(record.trace);
    this.save();
  }

  // The list item of one record, drawn as far as the record goes; `answered` and `completed` draw the rest.
  entry(record) {
    this.records.unshift(record);
    const item = document.createElement("li");
    item.className = "result pending";
    item.dataset.mode = record.mode;
    if (record.comparison) item.dataset.comparison = record.comparison;
    const title = document.createElement("strong");
    title.textContent = `${record.note ? record.note + " · " : ""}${this.labels[record.mode] || record.mode}`;
    const response = line("Response", "0 ms");
    response.value.classList.add("stopwatch");
    const accepted = line("Email accepted", "waiting…");
    item.append(title, response.row, accepted.row);
    this.list.prepend(item);
    const answered = () => {
      const { status, body, elapsedMs } = record;
      item.classList.remove("pending");
      if (status === 0) {
        item.classList.add("failed");
        response.value.textContent = body.error;
        accepted.name.textContent = "Email: ";
        accepted.value.textContent = "unknown: the browser got no answer";
        return;
      }
      item.dataset.status = String(status);
      item.dataset.browserMs = elapsedMs.toFixed(1);
      const serverMs = typeof body.response_ms === "number" ? body.response_ms : null;
      if (serverMs !== null) item.dataset.responseMs = serverMs.toFixed(1);
      response.value.textContent = `${twoClocks(serverMs, elapsedMs)} (HTTP ${status}${body.status ? ", " + body.status : ""})`;
      if (status >= 400) {
        item.classList.add("failed");
        accepted.name.textContent = "Email: ";
        accepted.value.textContent = body.error || "failed";
      }
      if (record.traceId) {
        item.dataset.traceId = record.traceId;
        item.append(this.actions(record.traceId, `${title.textContent}, HTTP ${status}`));
      }
    };
    const completed = (trace) => {
      if (trace.fate.acceptedMs !== null) item.dataset.acceptedMs = trace.fate.acceptedMs.toFixed(1);
      if (trace.fate.failed) {
        item.classList.add("failed");
        accepted.name.textContent = "Email: "; // "Email accepted: not delivered" would say two things at once
      }
      if (trace.fate.text) accepted.value.textContent = trace.fate.text;
    };
    // The trace could not be read: gone (a restart, or newer sends pushed it out) or still open after the wait.
    const untraced = () => {
      accepted.name.textContent = "Email: ";
      accepted.value.textContent = "unknown here: its trace could not be read (the sandbox may have restarted); the mailbox shows what arrived";
    };
    return { item, response: response.value, answered, completed, untraced };
  }

  // "Step through it" here, under the results; "Open the trace" on a page of its own. Each names its send for a
  // screen reader's list of buttons and links, where a dozen identical names would say nothing.
  actions(traceId, title) {
    const actions = document.createElement("p");
    actions.className = "result-actions";
    const step = document.createElement("button");
    step.type = "button";
    step.append("Step through it", hidden(` (${title})`));
    step.addEventListener("click", () => this.onTrace && this.onTrace(traceId));
    const link = document.createElement("a");
    link.href = `/traces/${encodeURIComponent(traceId)}`;
    link.append("Open the trace on its own page", hidden(` (${title})`));
    actions.append(step, " ", link);
    return actions;
  }

  // When the sink accepted the email, in ms from the moment the server had the request (the trace's clock).
  acceptedMs(traceId) {
    const trace = this.trace(traceId);
    return trace && trace.accepted_ms !== null ? trace.accepted_ms : null;
  }

  // What this list keeps of a complete trace (the times, the mode, and `fate`: describeOutcome's reading of it).
  summary(traceId) {
    const record = this.records.find((r) => r.traceId === traceId);
    return record && record.trace ? record.trace : null;
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

// What a saved entry keeps of its trace: what the list, the comparison and the verdict read.
function keptTrace(trace) {
  const { trace_id, mode, response_ms, accepted_ms, comparison, outcome } = trace;
  return { trace_id, mode, response_ms, accepted_ms, comparison, outcome, fate: describeOutcome(trace) };
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
      error: null,
      text: `${formatMs(trace.accepted_ms)} after the server had the request${order ? ` (${order})` : ""}`,
    };
  }
  const failures = (trace.events || []).filter((e) => FAILURE_KINDS.includes(e.kind));
  const last = failures[failures.length - 1];
  if (!last) return { acceptedMs: null, failed: false, error: null, text: "" };
  const attempts = trace.events.filter((e) => e.kind === "attempt.started").length;
  const order = relativeTo(last.t_ms, answer, "the answer left");
  const tries = attempts > 1 ? `, after ${attempts} attempts` : "";
  const error = String(last.details.error || "failed").replace(/\.+$/, "");
  const fate = trace.outcome === "unknown" ? "the app cannot tell whether it arrived" : "not delivered";
  const ended = last.kind === "task.unsent" ? "The view's event loop closed with it unsent" : "The send gave up";
  return {
    acceptedMs: null,
    failed: true,
    error: `${fate}: ${error}`,
    text: `${fate}: ${error}. ${ended} ${formatMs(last.t_ms)} after the server had the request${order ? ` (${order})` : ""}${tries}.`,
  };
}

function hidden(text) {
  const span = document.createElement("span");
  span.className = "visually-hidden";
  span.textContent = text;
  return span;
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
  return { row, name, value };
}
