// The app's own count of its sends and of the worker threads alive right now (all modes: one thread per email
// in thread mode, the pool's workers, the queue consumer's), polled once a second from /api/stats.
import { getJSON } from "./api.js";

export function startStats(element) {
  let busy = false;
  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const { status, body } = await getJSON("/api/stats");
      if (status === 200) element.textContent = describe(body);
    } catch (error) {
      // Keep the last line; the next poll will try again.
    } finally {
      busy = false;
    }
  }
  refresh();
  setInterval(refresh, 1000);
}

function describe(stats) {
  const byMode = ["thread", "pool", "queue"].map((mode) => `${mode} ${stats.threads_by_mode[mode]}`).join(", ");
  const fates = [`${stats.delivered} delivered`, `${stats.failed} failed`];
  if (stats.unknown) fates.push(`${stats.unknown} of unknown fate`);
  if (stats.possibly_duplicated) fates.push(`${stats.possibly_duplicated} possibly delivered twice`);
  fates.push(`${stats.pending} pending`);
  return `Worker threads alive now: ${stats.threads_alive} (${byMode}). Accepted ${stats.sent}: ${fates.join(", ")}.`;
}
