// You are the scheduler: start a send whose threads wait at the gates, release them one by one, then have the
// server judge the run's trace against the challenge's goal.
import { getJSON, sendJSON } from "./api.js";

const card = document.getElementById("threads-card");
const list = document.getElementById("threads");
const status = document.getElementById("send-status");
const verdict = document.getElementById("verdict");
const traceLink = document.getElementById("trace-link");
const starts = [...document.querySelectorAll(".challenge button.start")];
const POLL_MS = 200;

for (const button of starts) {
  button.addEventListener("click", () => run(button.closest(".challenge")));
}

function say(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

async function run(challenge) {
  const { slug, mode } = challenge.dataset;
  for (const button of starts) button.disabled = true;
  card.hidden = false;
  list.replaceChildren();
  say(verdict, "");
  traceLink.hidden = true;
  try {
    const before = new Set((await getJSON("/api/schedule")).body.sends.map((s) => s.trace_id));
    say(status, `A ${mode} send is starting; its threads will stop at their first gates.`);
    let answer = null;
    sendJSON("POST", `/send-email/${encodeURIComponent(mode)}?schedule=manual`, {}).then(
      (reply) => { answer = reply; },
      () => { answer = { status: 0, body: {} }; },
    );
    const send = await follow(before, () => answer);
    if (!send) {
      say(verdict, answer && answer.body.error ? `The send was refused: ${answer.body.error}` : "The send never started.");
      return;
    }
    const judged = await sendJSON("POST", `/api/challenges/${encodeURIComponent(slug)}/check`, { trace_id: send.trace_id });
    if (judged.status !== 200) {
      say(verdict, judged.body.error || `The run could not be judged (HTTP ${judged.status}).`);
    } else {
      say(verdict, `${judged.body.solved ? "Solved." : "Not this time."} ${judged.body.why}`);
      if (judged.body.solved) challenge.querySelector(".solved-badge").hidden = false;
    }
    traceLink.href = `/traces/${encodeURIComponent(send.trace_id)}`;
    traceLink.hidden = false;
  } finally {
    for (const button of starts) button.disabled = false;
  }
}

// Show the send's held threads until it is over (its trace complete and nobody held); returns it, or null if it
// never appeared.
async function follow(before, answer) {
  let shown = "";
  for (let waited = 0; ; waited += POLL_MS) {
    const { body } = await getJSON("/api/schedule");
    const send = body.sends.find((s) => !before.has(s.trace_id));
    if (!send) {
      if (answer() || waited > 10000) return null;
    } else {
      const key = send.waiting.map((w) => `${w.thread}@${w.gate}`).join("|");
      if (key !== shown) {
        shown = key;
        list.replaceChildren(...send.waiting.map((w) => threadItem(send.trace_id, w)));
      }
      const reply = answer();
      say(status, reply ? `The browser has its answer: HTTP ${reply.status}.` : "The browser is still waiting for its answer.");
      if (send.complete && send.waiting.length === 0) return send;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function threadItem(traceId, waiting) {
  const item = document.createElement("li");
  const who = document.createElement("strong");
  who.textContent = `${waiting.role}: ${waiting.thread}`;
  const where = document.createElement("span");
  where.textContent = ` waits at “${waiting.gate}”, on `;
  const line = document.createElement("code");
  line.textContent = `${waiting.file}:${waiting.line}  ${waiting.code}`;
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = "Run to next gate";
  button.setAttribute("aria-label", `Run ${waiting.thread} to its next gate`);
  button.addEventListener("click", async () => {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    await sendJSON("POST", `/api/schedule/${encodeURIComponent(traceId)}/release`, { thread: waiting.thread });
  });
  item.append(who, where, line, " ", button);
  return item;
}
