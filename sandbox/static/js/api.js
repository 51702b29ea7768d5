// Talking to the sandbox's JSON API. Every caller gets the status and body, errors included.

export async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  return { status: response.status, body: await response.json() };
}

export async function send(mode, fields) {
  const clickedAt = performance.now();
  const response = await fetch(`/send-email/${encodeURIComponent(mode)}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(fields),
  });
  const body = await response.json();
  return { status: response.status, body, clickedAt, elapsedMs: performance.now() - clickedAt };
}

export async function changeSink(changes) {
  const response = await fetch("/api/sink", {
    method: "PUT",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(changes),
  });
  return { status: response.status, body: await response.json() };
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

export function formatMs(ms) {
  if (ms === null || ms === undefined) return "–";
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`;
}
