// A send with a ping in the middle of it: while the send is under way, GET /api/ping, timed by the browser. The
// report says what this run measured and what that means on the kind of server this process runs; nothing in it
// is assumed from the server's kind alone.
import { formatMs, ping, relativeTo, sleep } from "./api.js";

// How long after the send to ping: late enough that the send is surely waiting on the sink, early enough that
// it is not over. A quarter of the sink's delay, between 0.1 and 0.5 s.
export function pingAfterMs(delayS) {
  return Math.min(500, Math.max(100, delayS * 250));
}

export async function sendWithPing(results, mode, fields, afterMs, options = {}) {
  const sending = results.run(mode, fields, options);
  await sleep(afterMs);
  let pinged;
  try {
    pinged = await ping(options.base);
  } catch (error) {
    pinged = { error: String(error) };
  }
  const traceId = await sending;
  const sent = traceId ? results.sends.get(traceId) : null;
  return { traceId, pinged, sent, trace: traceId ? results.trace(traceId) : null };
}

export function renderPingReport(container, { pinged, sent, trace }, serverKind) {
  container.replaceChildren();
  container.hidden = false;
  if (!sent || pinged.error) {
    container.append(paragraph(sent ? `The ping got no answer: ${pinged.error}.` : "The send got no answer, so there is nothing to set the ping against."));
    container.dataset.order = "unknown";
    return;
  }
  const sendEnd = sent.clickedAt + sent.elapsedMs;
  const pingWait = pinged.ended - pinged.started;
  const order = pinged.started >= sendEnd ? "no-overlap" : pinged.ended < sendEnd ? "ping-first" : "send-first";
  container.dataset.order = order;
  container.dataset.pingMs = pingWait.toFixed(1);
  container.dataset.sendMs = sent.elapsedMs.toFixed(1);

  const serverMs = typeof sent.body.response_ms === "number" ? ` (${formatMs(sent.body.response_ms)} by the server's clock)` : "";
  const rows = [
    ["Blocking send", `answered ${formatMs(sent.elapsedMs)} after it left your browser${serverMs}`],
    ["Your ping", `left ${formatMs(pinged.started - sent.clickedAt)} after the send and was answered ${formatMs(pingWait)} later, ${relativeTo(pinged.ended, sendEnd, "the send's answer")}`],
  ];
  const list = document.createElement("dl");
  list.className = "ping-facts";
  for (const [term, text] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = text;
    list.append(dt, dd);
  }
  container.append(list, paragraph(meaning(order, serverKind)), paragraph(serverLog(trace)));
}

function meaning(order, kind) {
  if (order === "no-overlap") {
    return "The send had already been answered when the ping left, so this run cannot show whether the server would have made the ping wait. Press Run it again.";
  }
  if (kind === "threaded" && order === "ping-first") {
    return "This step's server is threaded: while the send's request was still held in mail.send(), another thread took the ping and answered it. Only the sender waited.";
  }
  if (kind === "single" && order === "send-first") {
    return "This step's server is single: it took the ping only after the blocking send's answer had left, so the ping waited for the rest of the send. On this server every visitor waits behind a blocking send.";
  }
  if (kind === "threaded") {
    return "This step's server is threaded, yet this ping was answered only after the send. Something other than the server's kind held it up (a busy machine, or the browser's limit on open connections). Press Run it again, and read the Main App State column of the trace.";
  }
  return "This step's server is single, yet this ping was answered before the send's answer. Read the Main App State column of the trace to see what the server did meanwhile.";
}

// The web server's own record of the other requests during this send, from the trace (server clock).
function serverLog(trace) {
  const server = trace && trace.server;
  if (!server || !server.observed) return "The web server's own log of other requests was not available for this run.";
  const answerAt = trace.response_ms;
  const during = server.requests.filter((r) => r.arrived_ms <= answerAt);
  const pings = during.filter((r) => r.path === "/api/ping").length;
  const before = during.filter((r) => r.finished_ms !== null && r.finished_ms <= answerAt).length;
  const waits = during.filter((r) => r.finished_ms !== null).map((r) => r.finished_ms - r.arrived_ms);
  const longest = waits.length ? `; the longest any of them waited from arrival to answer was ${formatMs(Math.max(...waits))}` : "";
  return `The server's own log of this send: ${plural(during.length, "other request")} (${plural(pings, "ping")}) arrived before its answer left, and ${before} of them were answered before it${longest}.`;
}

function plural(n, noun) {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

function paragraph(text) {
  const p = document.createElement("p");
  p.textContent = text;
  return p;
}
