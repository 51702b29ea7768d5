// You are the scheduler: start a challenge's sends (or sends of your own choosing), whose threads wait at the gates,
// release them one by one, then have the server judge the runs' traces against the challenge's goal.
import { getJSON, sendJSON } from "./api.js";

const card = document.getElementById("threads-card");
const list = document.getElementById("threads");
const status = document.getElementById("send-status");
const verdict = document.getElementById("verdict");
const traceLinks = document.getElementById("trace-links");
const freeForm = document.getElementById("free-form");
const starts = [...document.querySelectorAll("button.start")];
const POLL_MS = 200;
const APPEAR_MS = 10000;

for (const button of document.querySelectorAll(".challenge button.start")) {
  const challenge = button.closest(".challenge");
  button.addEventListener("click", () => {
    run(challenge.dataset.mode, Number(challenge.dataset.sends), (sends) => judge(challenge, sends));
  });
}
freeForm.addEventListener("submit", (event) => {
  event.preventDefault();
  run(freeForm.elements.mode.value, Number(freeForm.elements.sends.value), null);
});

function say(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

// Start ``count`` sends by ``mode`` held at the gates, follow them until they are over, then judge them (when a
// challenge asked for the run) and link their traces.
async function run(mode, count, judgeRun) {
  for (const button of starts) button.disabled = true;
  card.hidden = false;
  list.replaceChildren();
  say(verdict, "");
  traceLinks.replaceChildren();
  try {
    const sends = await startSends(mode, count);
    if (!sends) return;
    await follow(sends);
    if (judgeRun) {
      await judgeRun(sends);
    } else {
      say(verdict, "Over: every thread ran to its end. The traces below tell the order you chose, step by step.");
    }
    traceLinks.replaceChildren(...sends.map(traceLink));
  } finally {
    for (const button of starts) button.disabled = false;
  }
}

async function judge(challenge, sends) {
  const { slug } = challenge.dataset;
  const judged = await sendJSON("POST", `/api/challenges/${encodeURIComponent(slug)}/check`, {
    trace_ids: sends.map((s) => s.traceId),
  });
  if (judged.status !== 200) {
    say(verdict, judged.body.error || `The run could not be judged (HTTP ${judged.status}).`);
  } else {
    say(verdict, `${judged.body.solved ? "Solved." : "Not this time."} ${judged.body.why}`);
    if (judged.body.solved) challenge.querySelector(".solved-badge").hidden = false;
  }
}

// Start the sends one after the other, each once the one before is held at its gates, so "send 1" is the one
// started first. Returns [{n, traceId, answer()}], or null (and says why) when one never started.
async function startSends(mode, count) {
  const known = new Set((await getJSON("/api/schedule")).body.sends.map((s) => s.trace_id));
  const sends = [];
  for (let n = 1; n <= count; n += 1) {
    const which = count > 1 ? `Send ${n} of ${count}` : `A ${mode} send`;
    say(status, `${which} is starting; its threads will stop at their first gates.`);
    let reply = null;
    sendJSON("POST", `/send-email/${encodeURIComponent(mode)}?schedule=manual`, {}).then(
      (answer) => { reply = answer; },
      () => { reply = { status: 0, body: {} }; },
    );
    const traceId = await appeared(known, () => reply);
    if (!traceId) {
      say(verdict, reply && reply.body.error ? `The send was refused: ${reply.body.error}` : "The send never started.");
      return null;
    }
    known.add(traceId);
    sends.push({ n, traceId, answer: () => reply });
  }
  return sends;
}

// The trace id of a scheduled send not in ``known``, once it appears; null if the send was answered (refused)
// or nothing appeared in time.
async function appeared(known, answer) {
  for (let waited = 0; waited <= APPEAR_MS; waited += POLL_MS) {
    const { body } = await getJSON("/api/schedule");
    const send = body.sends.find((s) => !known.has(s.trace_id));
    if (send) return send.trace_id;
    if (answer()) return null;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  return null;
}

// Show the sends' held and blocked threads until every send is over (its trace complete and nobody held).
async function follow(sends) {
  let shown = "";
  for (;;) {
    const { body } = await getJSON("/api/schedule");
    const current = sends.map((send) => ({ send, view: body.sends.find((s) => s.trace_id === send.traceId) }));
    const items = current.flatMap(({ send, view }) => (view ? threadItems(send, view, sends.length) : []));
    const key = items.map((item) => item.dataset.key).join("|");
    if (key !== shown) {
      shown = key;
      list.replaceChildren(...items);
    }
    say(status, answers(sends));
    if (current.every(({ view }) => !view || (view.complete && view.waiting.length === 0 && view.blocked.length === 0))) {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function answers(sends) {
  return sends
    .map((send) => {
      const reply = send.answer();
      const who = sends.length > 1 ? `Send ${send.n}: the browser` : "The browser";
      return reply ? `${who} has its answer, HTTP ${reply.status}.` : `${who} is still waiting for its answer.`;
    })
    .join(" ");
}

function threadItems(send, view, count) {
  const prefix = count > 1 ? `send ${send.n}, ` : "";
  const held = view.waiting.map((waiting) => {
    const item = threadItem(`${prefix}${waiting.role}: ${waiting.thread}`, ` waits at “${waiting.gate}”`, waiting);
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "Run to next gate";
    button.setAttribute("aria-label", `Run ${waiting.thread} to its next gate`);
    button.addEventListener("click", async () => {
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      await sendJSON("POST", `/api/schedule/${encodeURIComponent(send.traceId)}/release`, { thread: waiting.thread });
    });
    item.append(" ", button);
    item.dataset.key = `${send.traceId}:${waiting.thread}@${waiting.gate}`;
    return item;
  });
  const blocked = view.blocked.map((waiting) => {
    const item = threadItem(`${prefix}${waiting.role}: ${waiting.thread}`, ` ${waiting.why} (no button frees it)`, waiting);
    item.classList.add("blocked");
    item.dataset.key = `${send.traceId}:${waiting.thread}#${waiting.waits_for}`;
    return item;
  });
  return [...held, ...blocked];
}

function threadItem(whoText, whereText, waiting) {
  const item = document.createElement("li");
  const who = document.createElement("strong");
  who.textContent = whoText;
  const line = document.createElement("code");
  if (waiting.block) {
    line.textContent = `${waiting.file}, line ${waiting.line}`;
    item.append(who, `${whereText}, on `, line, ":", codeBlock(waiting));
  } else {
    line.textContent = `${waiting.file}:${waiting.line}  ${waiting.code}`;
    item.append(who, `${whereText}, on `, line);
  }
  return item;
}

// The student's function around the held line, numbered, the held line marked: as the stepper's code pane shows it.
function codeBlock(waiting) {
  const pre = document.createElement("pre");
  pre.className = "held-code";
  pre.tabIndex = 0;
  pre.setAttribute("aria-label", `${waiting.block.function} in ${waiting.file}, line ${waiting.line} marked`);
  const code = document.createElement("code");
  waiting.block.lines.forEach((text, index) => {
    const number = waiting.block.first_line + index;
    const row = document.createElement("span");
    row.className = number === waiting.line ? "code-row held" : "code-row";
    const no = document.createElement("span");
    no.className = "line-no";
    no.textContent = String(number);
    row.append(no, `${text}\n`);
    code.append(row);
  });
  pre.append(code);
  return pre;
}

function traceLink(send, index, sends) {
  const link = document.createElement("a");
  link.href = `/traces/${encodeURIComponent(send.traceId)}`;
  link.textContent = sends.length > 1 ? `Open the trace of send ${send.n}` : "Open the trace of this run";
  const item = document.createElement("li");
  item.append(link);
  return item;
}
