// A message opens on its rendered body (the HTML part, else the text); tabs switch to Text, Headers and Raw. The
// tabs follow the ARIA tabs pattern: arrow keys move between them, one panel shows at a time. Without this script
// every panel shows, one after the other.
import { refreshTimes } from "./mailbox.js";

refreshTimes(document);
setInterval(() => refreshTimes(document), 5000);

const tabs = Array.from(document.querySelectorAll("[data-tabs] [role=tab]"));
const tablist = document.querySelector("[data-tabs] [role=tablist]");

function select(chosen, focus = false) {
  for (const tab of tabs) {
    const selected = tab === chosen;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    document.getElementById(tab.getAttribute("aria-controls")).hidden = !selected;
  }
  if (focus) chosen.focus();
}

if (tabs.length) {
  tablist.hidden = false;
  for (const heading of document.querySelectorAll(".tab-heading")) heading.classList.add("visually-hidden");
  for (const [index, tab] of tabs.entries()) {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (event) => {
      const moves = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: tabs.length - 1 };
      if (!(event.key in moves)) return;
      event.preventDefault();
      select(tabs[(moves[event.key] + tabs.length) % tabs.length], true);
    });
  }
  select(tabs[0]);
}
