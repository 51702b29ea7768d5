// Run a lesson's scenario: each step sets the sink exactly as the lesson lists it (and the app's settings it names),
// then sends by each of its modes, one after the other. The visitor's own settings are read first and put back at
// the end, whatever happened.
import { changeSettings, changeSink, getJSON } from "./api.js";
import { newComparisonId } from "./comparison.js";

const APP_KEYS = ["smtp_timeout_s", "pool_backlog"]; // what PUT /api/app takes

// `send(mode, fields, step, index)` does one send and resolves with its trace id (or null) once its trace is complete.
export async function runScenario(scenario, { send, say, embeddedSink, onStepDone }) {
  const saved = embeddedSink ? await getJSON("/api/sink") : null;
  if (saved && saved.status !== 200) throw new Error(`could not read the sink's settings: ${saved.body.error}`);
  const changesApp = scenario.steps.some((step) => Object.keys(step.app).length > 0);
  const savedApp = changesApp ? await getJSON("/api/app") : null;
  if (savedApp && savedApp.status !== 200) throw new Error(`could not read the app's settings: ${savedApp.body.error}`);
  const ownApp = savedApp && Object.fromEntries(APP_KEYS.map((key) => [key, savedApp.body[key]]));
  const sent = [];
  let restored = null;
  let appRestored = true;
  try {
    for (const [index, step] of scenario.steps.entries()) {
      const where = scenario.steps.length > 1 ? `Step ${index + 1} of ${scenario.steps.length}: ` : "";
      if (saved) {
        say(`${where}setting the sink to: ${step.sink_text}…`);
        const { status, body } = await changeSink(step.sink);
        if (status !== 200) throw new Error(`the sink refused the step's settings: ${body.error}`);
      }
      if (ownApp) {
        const { status, body } = await changeSettings("/api/app", { ...ownApp, ...step.app });
        if (status !== 200) throw new Error(`the app refused the step's settings: ${body.error}`);
      }
      const fields = step.compare ? { comparison: newComparisonId() } : {};
      const traceIds = [];
      for (const mode of step.modes) {
        const clients = step.clients || 1;
        say(`${where}sending ${clients > 1 ? `${clients} emails at once ` : ""}by ${mode}…`);
        // A burst: every send starts before any has answered, as if that many visitors pressed the button together.
        const ids = await Promise.all(Array.from({ length: clients }, () => send(mode, fields, step, index)));
        traceIds.push(...ids.filter(Boolean));
      }
      sent.push(...traceIds);
      if (onStepDone) onStepDone(step, traceIds);
    }
  } finally {
    if (ownApp) appRestored = (await changeSettings("/api/app", ownApp)).status === 200;
    if (saved) {
      const { status, body } = await changeSink(saved.body);
      restored = status === 200 ? body : null;
    }
  }
  return { traceIds: sent, saved: saved && saved.body, restored, appRestored };
}

