// The sends of one comparison on one time axis: how long each answer took and when each email was accepted, both
// counted by the server from the moment it had that request. Only sends that share a comparison id are drawn
// together, never the newest of each mode from unrelated clicks.
import { formatMs } from "./api.js";

// A fresh comparison id (letters, digits and dashes, as the send route accepts). randomUUID needs a secure
// context; a sandbox opened by a LAN address over plain HTTP is not one, so fall back to getRandomValues.
export function newComparisonId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

export function renderComparison(container, traces, labels = {}) {
  const times = traces.flatMap((t) => [t.response_ms, t.accepted_ms]).filter((v) => v !== null && v !== undefined);
  const scale = Math.max(...times, 1);
  container.replaceChildren();
  container.dataset.comparison = traces[0] ? traces[0].comparison || "" : "";
  for (const trace of traces) {
    const group = document.createElement("div");
    group.className = "compare-row";
    group.dataset.traceId = trace.trace_id;
    group.dataset.mode = trace.mode;
    const name = document.createElement("p");
    name.className = "compare-name";
    name.textContent = labels[trace.mode] || trace.mode;
    group.append(name);
    const bars = [["response", trace.response_ms, "response"], ["email accepted", trace.accepted_ms, "accepted"]];
    for (const [label, value, kind] of bars) {
      const bar = document.createElement("div");
      bar.className = `compare-bar compare-${kind}`;
      bar.style.width = value === null ? "0" : `${Math.max(0.5, (value / scale) * 100)}%`;
      const text = document.createElement("span");
      text.className = "compare-label";
      text.textContent = `${label}: ${value === null ? "never (not delivered)" : formatMs(value)}`;
      const wrap = document.createElement("div");
      wrap.className = "compare-track";
      wrap.append(bar, text);
      group.append(wrap);
    }
    container.append(group);
  }
  const axis = document.createElement("p");
  axis.className = "compare-axis";
  axis.textContent = `0 = the moment the server had each request; the axis ends at ${formatMs(scale)}, one scale for every bar.`;
  container.append(axis);
}
