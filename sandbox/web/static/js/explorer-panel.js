// The explorer on the scheduler's page: start an exploration of the desk's own sends, follow its progress, then
// show every ordering with its outcome and how often the runs nobody held took it.
import { getJSON, sendJSON } from "./api.js";

const form = document.getElementById("explore-form");
const button = document.getElementById("explore-start");
const status = document.getElementById("explore-status");
const bar = document.getElementById("explore-progress");
const result = document.getElementById("explore-result");
const POLL_MS = 300;

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const scenario = form.elements.scenario.value;
  const runs = Number(form.elements.runs.value);
  button.disabled = true;
  result.hidden = true;
  try {
    const started = await sendJSON("POST", "/api/explorations", { scenario, runs });
    if (started.status !== 202) {
      status.textContent = started.body.error || `The exploration could not start (HTTP ${started.status}).`;
      return;
    }
    const job = await follow(started.body.id);
    if (job.state === "failed") {
      status.textContent = `The exploration stopped: ${job.error}`;
    } else {
      status.textContent = `Done: ${job.result.enumerated} orderings run, then ${job.result.free_runs} runs nobody held.`;
      show(job.result);
    }
  } finally {
    button.disabled = false;
    bar.hidden = true;
  }
});

async function follow(id) {
  bar.hidden = false;
  for (;;) {
    const { body } = await getJSON(`/api/explorations/${encodeURIComponent(id)}`);
    if (body.state !== "running") return body;
    const { phase, done, total } = body.progress;
    if (total) {
      bar.max = total;
      bar.value = done;
    } else {
      bar.removeAttribute("value");
    }
    status.textContent = phase ? `${phase}: ${done}${total ? ` of ${total}` : ""}` : "Starting.";
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function cell(tag, text) {
  const element = document.createElement(tag);
  element.textContent = text;
  return element;
}

function yesNo(value) {
  if (value === null) return "no 250";
  return value ? "yes" : "no";
}

function show(exploration) {
  document.getElementById("explore-what").textContent = `${exploration.question} ${exploration.what_ran}`;
  document.getElementById("explore-summary").replaceChildren(...exploration.summary.map((line) => cell("li", line)));
  const head = document.createElement("tr");
  const headings = ["#", "Releases, in order", ...exploration.columns.map((c) => c.heading),
    `Runs nobody held (of ${exploration.free_runs})`, exploration.sends > 1 ? "Traces" : "Trace"];
  for (const heading of headings) {
    const th = cell("th", heading);
    th.scope = "col";
    head.append(th);
  }
  const table = document.getElementById("explore-table");
  table.tHead.replaceChildren(head);
  table.tBodies[0].replaceChildren(...exploration.orderings.map((ordering, index) => {
    const row = document.createElement("tr");
    const number = cell("th", String(index + 1));
    number.scope = "row";
    const steps = document.createElement("ol");
    steps.className = "releases";
    steps.append(...ordering.steps.map((step) => cell("li", `${step.role}: ${step.gate}`)));
    const releases = document.createElement("td");
    releases.append(steps);
    const never = exploration.free_runs > 0 && ordering.observed === 0;
    const observed = cell("td", String(ordering.observed));
    observed.className = "num";
    if (never) {
      row.className = "never-seen";
      observed.append(" ", cell("strong", "never seen"));
    }
    const links = document.createElement("td");
    ordering.trace_ids.forEach((traceId, n) => {
      const link = cell("a", ordering.trace_ids.length > 1 ? `send ${n + 1}` : "trace");
      link.href = `/traces/${encodeURIComponent(traceId)}`;
      links.append(link, " ");
    });
    row.append(number, releases, ...exploration.columns.map((c) => cell("td", yesNo(ordering.outcome[c.name]))),
      observed, links);
    return row;
  }));
  result.hidden = false;
}
