// Talking to the sandbox's JSON API. Every caller gets the status and body, errors included.

export async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  return { status: response.status, body: await response.json() };
}

// Ask `url` every `everyMs` and hand each 200 answer's body to `onBody`; one request at a time, and a failed one
// keeps what was shown (the next poll tries again). Returns the refresh, for an extra poll at once.
export function poll(url, everyMs, onBody) {
  let busy = false;
  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const { status, body } = await getJSON(url);
      if (status === 200) onBody(body);
    } catch (error) {
      // Keep the last view; the next poll will try again.
    } finally {
      busy = false;
    }
  }
  refresh();
  setInterval(refresh, everyMs);
  return refresh;
}

// One send. `elapsedMs` is the browser's own clock, from just before the request left to the parsed answer: it
// includes the network and the browser. The server's clock is in the answer, `body.response_ms`. `base` is the
// origin of the sandbox's other server, for a send through it ("" for this page's own server); the desk cookie goes
// along to it too, so the send meets this visitor's sink settings and lands in their mailbox.
export async function send(mode, fields, base = "") {
  const clickedAt = performance.now();
  const response = await fetch(`${base}/send-email/${encodeURIComponent(mode)}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(fields),
    credentials: "include",
  });
  const body = await response.json();
  return { status: response.status, body, clickedAt, elapsedMs: performance.now() - clickedAt };
}

// One GET /api/ping, timed by the browser: when it left and when its answer had arrived (`base` as for send).
export async function ping(base = "") {
  const started = performance.now();
  const response = await fetch(`${base}/api/ping`, { cache: "no-store" });
  await response.json();
  return { status: response.status, started, ended: performance.now() };
}

// Send `body` as JSON with `method` to `url`; the status and the answer's body.
export async function sendJSON(method, url, body) {
  const response = await fetch(url, {
    method,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

// PUT a JSON object of settings to `url` (/api/sink, /api/app).
export function changeSettings(url, changes) {
  return sendJSON("PUT", url, changes);
}

export function changeSink(changes) {
  return changeSettings("/api/sink", changes);
}

export function setDelay(seconds) {
  return changeSink({ delay_s: seconds });
}

// Poll a trace until nothing more will be recorded in it (the response left and any worker ended).
export async function completeTrace(traceId, timeoutMs = 70000) {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const { status, body } = await getJSON(`/api/traces/${encodeURIComponent(traceId)}`);
    if (status === 200 && body.complete) return body;
    if (status === 404) return null;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return null;
}

// A duration for people, with the digits the trace page prints for the same value. Durations are never negative: a
// caller with a signed gap says "before" or "after" itself.
export function formatMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
  const value = Math.max(0, ms);
  return value >= 1000 ? `${fixed(value / 1000, 2)} s` : `${fixed(value, 1)} ms`;
}

// Python's "%.{digits}f" for a value of 0 or more: like toFixed, except that an exact tie (4.25 to one digit) goes to
// the even digit (4.2) as Python's does, not up (4.3). A value is an exact tie when it times 2^(digits+1) is odd.
export function fixed(value, digits) {
  const doubled = value * 2 ** (digits + 1);
  if (!Number.isInteger(doubled) || doubled % 2 === 0) return value.toFixed(digits);
  const down = Math.floor(value * 10 ** digits); // exact for a tie
  return ((down % 2 === 0 ? down : down + 1) / 10 ** digits).toFixed(digits);
}

// "1.52 s before the answer left" / "3.0 ms after the answer left", from two times on the same clock.
export function relativeTo(t, reference, what) {
  if (t === null || t === undefined || reference === null || reference === undefined) return "";
  const gap = t - reference;
  return gap < 0 ? `${formatMs(-gap)} before ${what}` : `${formatMs(gap)} after ${what}`;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
