// A lesson's live sandbox: "Run it" sets the sink delay the lesson asks for and sends by each of its modes.
import { setDelay } from "./api.js";
import { startHeartbeat } from "./heartbeat.js";
import { ResultList } from "./results.js";
import { showTrace } from "./trace-frame.js";

const panel = document.querySelector("[data-scenario]");
const scenario = JSON.parse(panel.dataset.scenario);
const kinds = JSON.parse(panel.dataset.kinds);
const traceCard = document.querySelector("#trace-card");
const traceFrame = document.querySelector("#trace-frame");
const status = document.querySelector("#run-status");
const results = new ResultList(document.querySelector("#results"), {
  onTrace: (traceId) => showTrace(traceCard, traceFrame, traceId, kinds),
});

const run = document.querySelector("#run-it");
run.addEventListener("click", async () => {
  run.disabled = true;
  status.textContent = `Setting the sink delay to ${scenario.delay_s} s…`;
  await setDelay(scenario.delay_s);
  let last = null;
  for (const mode of scenario.modes) {
    status.textContent = `Sending by ${mode}…`;
    last = (await results.run(mode, {})) || last;
  }
  status.textContent = "Done. Step through the last trace below, or any result above.";
  run.disabled = false;
  if (last) showTrace(traceCard, traceFrame, last, kinds);
});

run.disabled = false; // enabled only once the click has somewhere to go
startHeartbeat(document.querySelector("#heartbeat"), document.querySelector("#heartbeat-status"));
