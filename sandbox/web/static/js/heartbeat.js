// A heartbeat: ask /api/ping about four times a second and draw every answer and every gap. On a server that
// handles one request at a time, a blocking send shows up as a long red gap; on a threaded one it does not.
const INTERVAL_MS = 250;
const WINDOW_MS = 10000;
const SLOW_MS = 300;

export function startHeartbeat(canvas, status) {
  const pings = []; // {start, end}
  let inFlight = null;
  let longest = 0;

  async function beat() {
    if (inFlight) return;
    inFlight = { start: performance.now(), end: null };
    pings.push(inFlight);
    try {
      await fetch("/api/ping", { cache: "no-store" });
    } catch (error) {
      // The server is gone: the gap keeps growing, which is what the strip should show.
      return;
    }
    inFlight.end = performance.now();
    longest = Math.max(longest, inFlight.end - inFlight.start);
    status.dataset.maxGapMs = longest.toFixed(0);
    inFlight = null;
  }

  function draw() {
    const now = performance.now();
    const context = canvas.getContext("2d");
    const { width, height } = canvas;
    context.clearRect(0, 0, width, height);
    context.fillStyle = "#f4f4f7";
    context.fillRect(0, 0, width, height);
    const x = (t) => width - ((now - t) / WINDOW_MS) * width;
    let recent = 0;
    for (const ping of pings) {
      const end = ping.end ?? now;
      if (end < now - WINDOW_MS) continue;
      const waited = end - ping.start;
      recent = Math.max(recent, waited);
      const slow = waited > SLOW_MS;
      context.fillStyle = slow ? "#b00020" : "#2a7a3b";
      const left = x(ping.start);
      const barWidth = Math.max(2, x(end) - left);
      const barHeight = slow ? height - 8 : Math.max(6, Math.min(height - 8, waited / 4));
      context.fillRect(left, height - 4 - barHeight, barWidth, barHeight);
    }
    while (pings.length && (pings[0].end ?? now) < now - WINDOW_MS) pings.shift();
    const current = inFlight ? now - inFlight.start : 0;
    const label = current > SLOW_MS ? `No answer for ${current.toFixed(0)} ms: the server is busy.` :
      `Longest wait for a ping in the last 10 s: ${recent.toFixed(0)} ms.`;
    if (status.textContent !== label) status.textContent = label;
    requestAnimationFrame(draw);
  }

  setInterval(beat, INTERVAL_MS);
  beat();
  requestAnimationFrame(draw);
}
