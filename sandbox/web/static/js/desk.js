// The visitor's desk: whether this browser has one of its own (GET /api/desk), and "Start my desk afresh".
import { getJSON } from "./api.js";

function describe(desk) {
  if (!desk.own) {
    return "This browser sends no desk cookie, so it shares the default desk with scripts and every other " +
      "browser without one: what you change here changes their sends too.";
  }
  const hours = desk.idle_cleanup_s / 3600;
  const idle = Number.isInteger(hours) ? `${hours} hour${hours === 1 ? "" : "s"}` : `${Math.round(desk.idle_cleanup_s / 60)} minutes`;
  const whose = desk.name ? `Your desk (${desk.name})` : "Your desk";
  return `${whose}: the sink settings, the mailbox, the results and the traces on this page are this browser's ` +
    "own, and other visitors have desks of their own. The app itself is shared: its SMTP timeout and pool " +
    "settings (a lesson may change them while it runs), its pool and its web server serve everyone. " +
    `A desk with no page open for ${idle} loses its settings and mail; ` +
    (desk.kept_days ? `its traces stay on the server for ${desk.kept_days} days unless you start afresh.` : "its traces go too.");
}

// Show the desk in `container`; `onReset` runs after the desk was started afresh (to clear what the page shows).
export async function startDesk(container, onReset) {
  const line = container.querySelector("#desk-line");
  const reset = container.querySelector("#desk-reset");
  let desk;
  try {
    const { status, body } = await getJSON("/api/desk");
    if (status !== 200) return;
    desk = body;
  } catch (error) {
    return; // the page works without the line
  }
  line.textContent = describe(desk);
  container.hidden = false;
  reset.hidden = !desk.own; // the default desk is shared: starting it afresh would wipe other people's sends
  reset.addEventListener("click", async () => {
    const sure = window.confirm("Start afresh? Your sink settings go back to the start, and your mail, results " +
      "and traces are deleted. Your instructor keeps what you sent and answered.");
    if (!sure) return;
    reset.disabled = true;
    try {
      const response = await fetch("/api/desk/reset", { method: "POST", headers: { Accept: "application/json" } });
      const body = await response.json();
      if (response.status !== 200) {
        line.textContent = body.error || `The desk could not be started afresh (HTTP ${response.status}).`;
        return;
      }
      onReset();
      line.textContent = "Your desk starts afresh: the sink's starting settings, an empty mailbox, no traces.";
    } finally {
      reset.disabled = false;
    }
  });
}
