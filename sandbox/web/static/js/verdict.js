// The verdict under the buttons: what a send, or a "Send both", measured, in the server's clock, chosen from the
// traces' facts (answer times, when each email was accepted or why not, which came first), never from the mode's
// name. Each verdict is a headline (what the run shows) and the numbers behind it.
import { formatMs } from "./api.js";

// One send: "Send (thread) answered in 5.4 ms (HTTP 202)." and "The mail server accepted the email 1.01 s after
// the request arrived, 1.00 s after the answer left."
export function sendVerdict(label, status, trace) { // `trace`: a ResultList summary
  return { headline: `${label} answered in ${formatMs(trace.response_ms)} (HTTP ${status}).`, detail: `${capital(fate(trace))}.` };
}

// A "Send both": which answer waited for its email (the headline), then both answers and both fates.
export function comparisonVerdict(labels, blocking, threaded) {
  const waits = `${labels.blocking} answered in ${formatMs(blocking.response_ms)} and ${labels.threaded} in ${formatMs(threaded.response_ms)}`;
  const fates = blocking.accepted_ms !== null && threaded.accepted_ms !== null ?
    `; the mail server accepted their emails ${formatMs(blocking.accepted_ms)} and ${formatMs(threaded.accepted_ms)} after each request arrived.` :
    `. ${labels.blocking}: ${fate(blocking)}. ${labels.threaded}: ${fate(threaded)}.`;
  const detail = `${waits}${fates}`;
  return { headline: order(labels, blocking, threaded) || outcome(labels, blocking, threaded), detail };
}

function fate(trace) {
  if (trace.accepted_ms !== null) {
    const gap = trace.accepted_ms - trace.response_ms;
    const when = gap < 0 ? `${formatMs(-gap)} before the answer left` : `${formatMs(gap)} after the answer left`;
    return `the mail server accepted the email ${formatMs(trace.accepted_ms)} after the request arrived, ${when}`;
  }
  return trace.fate.error || "the trace recorded neither a delivery nor a failure";
}

// Which answers came before their email was accepted: a fact of this run's two traces.
function order(labels, blocking, threaded) {
  const before = (t) => t.accepted_ms !== null && t.response_ms < t.accepted_ms;
  const after = (t) => t.accepted_ms !== null && t.response_ms >= t.accepted_ms;
  if (after(blocking) && before(threaded)) return `Only ${labels.threaded} answered before its email was accepted.`;
  if (before(blocking) && before(threaded)) return "Both answered before their emails were accepted.";
  if (after(blocking) && after(threaded)) return "Both answered after their emails were accepted.";
  if (before(blocking) && after(threaded)) return `Only ${labels.blocking} answered before its email was accepted.`;
  return "";
}

// When no order can be told (an email was not delivered), the headline says which were not.
function outcome(labels, blocking, threaded) {
  const lost = [[labels.blocking, blocking], [labels.threaded, threaded]].filter(([, t]) => t.accepted_ms === null);
  if (lost.length === 2) return "Neither email was delivered.";
  return `The email of ${lost[0][0]} was not delivered.`;
}

function capital(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
