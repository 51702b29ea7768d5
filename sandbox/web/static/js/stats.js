// The desk's own count of its sends, and the worker threads alive right now in the whole app (shared by every
// desk: one thread per email in thread mode, the pool's workers, the queue consumer's), polled once a second.
import { poll } from "./api.js";

export function startStats(element) {
  poll("/api/stats", 1000, (stats) => { element.textContent = describe(stats); });
}

function describe(stats) {
  const byMode = ["thread", "pool", "queue"].map((mode) => `${mode} ${stats.threads_by_mode[mode]}`).join(", ");
  const fates = [`${stats.delivered} delivered`, `${stats.failed} failed`];
  if (stats.unknown) fates.push(`${stats.unknown} of unknown fate`);
  if (stats.possibly_duplicated) fates.push(`${stats.possibly_duplicated} possibly delivered twice`);
  fates.push(`${stats.pending} pending`);
  return `Your sends: ${stats.sent} accepted, ${fates.join(", ")}. Worker threads alive now in the whole app: ` +
    `${stats.threads_alive} (${byMode}).`;
}
