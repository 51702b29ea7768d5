// Blocking and threaded sends on one time axis: how long the user waited, and when the email was accepted.
import { formatMs } from "./api.js";

export function renderComparison(container, traces) {
  const times = traces.flatMap((t) => [t.response_ms, t.accepted_ms]).filter((v) => v !== null);
  const scale = Math.max(...times, 1);
  container.replaceChildren();
  for (const trace of traces) {
    const group = document.createElement("div");
    group.className = "compare-row";
    const name = document.createElement("p");
    name.className = "compare-name";
    name.textContent = trace.mode;
    group.append(name);
    for (const [label, value, kind] of [["response", trace.response_ms, "response"], ["email accepted", trace.accepted_ms, "accepted"]]) {
      const bar = document.createElement("div");
      bar.className = `compare-bar compare-${kind}`;
      bar.style.width = value === null ? "0" : `${Math.max(0.5, (value / scale) * 100)}%`;
      const text = document.createElement("span");
      text.className = "compare-label";
      text.textContent = `${label}: ${formatMs(value)}`;
      const wrap = document.createElement("div");
      wrap.className = "compare-track";
      wrap.append(bar, text);
      group.append(wrap);
    }
    container.append(group);
  }
  const axis = document.createElement("p");
  axis.className = "compare-axis";
  axis.textContent = `0 — ${formatMs(scale)} (one scale for every bar)`;
  container.append(axis);
}
