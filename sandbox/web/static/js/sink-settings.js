// The sink's settings where a send can be pressed: read from the server after every change and every few seconds,
// so a change made in another tab or by a lesson's run shows here too. The line starts with its `data-prefix`
// ("Sink: " by default); `onSettings` also gets each reading.
import { getJSON } from "./api.js";

const EVERY_MS = 2000;
const FAULTS = ["greet_delay_s", "jitter_s", "reject_probability", "disconnect_probability"];

// How many faults are on: the ones that change what a send meets (the seed alone changes nothing).
export function activeFaults(settings) {
  return FAULTS.filter((name) => settings[name] > 0).length + (settings.listening ? 0 : 1);
}

export function watchSink(line, onSettings = () => {}) {
  let shown = null;
  let reading = false; // one reading at a time: a burst of calls (a step's eight sends) makes one request
  async function refresh() {
    if (reading) return;
    reading = true;
    let answer;
    try {
      answer = await getJSON("/api/sink");
    } catch (error) {
      return; // the next reading tries again
    } finally {
      reading = false;
    }
    if (answer.status !== 200) return;
    const text = `${line.dataset.prefix || "Sink: "}${answer.body.description}.`;
    if (text !== shown) {
      line.textContent = text;
      line.dataset.activeFaults = String(activeFaults(answer.body));
      shown = text;
    }
    onSettings(answer.body);
  }
  refresh();
  setInterval(refresh, EVERY_MS);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  return refresh;
}
