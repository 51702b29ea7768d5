// What the sink accepted, newest first, polled once a second: the sandbox page's mailbox panel and the mailbox
// page. Each entry shows who sent it, its subject and how long ago it arrived, like a developer's mail catcher.
import { formatMs, poll } from "./api.js";

// "just now", "12 s ago", "3 min ago", "2 h ago": from the sink's wall-clock stamp (the same machine's clock).
export function relativeTime(iso, now = Date.now()) {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (Number.isNaN(seconds)) return iso;
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  return `${Math.floor(seconds / 3600)} h ago`;
}

// Every <time datetime> in `root` says how long ago, with the exact stamp on hover.
export function refreshTimes(root) {
  for (const time of root.querySelectorAll("time[datetime]")) {
    time.title = time.dateTime;
    const text = relativeTime(time.dateTime);
    if (time.textContent !== text) time.textContent = text;
  }
}

function messageItem(message, extra) {
  const item = document.createElement("li");
  item.dataset.messageId = String(message.id);
  if (message.trace_id) item.dataset.traceId = message.trace_id;
  const link = document.createElement("a");
  link.className = "inbox-open";
  link.href = `/mailbox/${message.id}`;
  const from = document.createElement("span");
  from.className = "inbox-from";
  from.textContent = message.mail_from;
  const subject = document.createElement("span");
  subject.className = "inbox-subject";
  subject.textContent = message.subject;
  link.append(from, " ", subject);
  const meta = document.createElement("span");
  meta.className = "meta";
  const time = document.createElement("time");
  time.dateTime = message.received_at;
  meta.append(`to ${message.rcpt_tos.join(", ")} · `, time, extra(message));
  item.append(link, " ", meta);
  return item;
}

// Keep `list` drawn from /api/messages; `extra(message)` adds words after the time. Returns the refresh.
export function watchMailbox(list, { limit = 20, extra = () => "", onCount = () => {} } = {}) {
  function render(messages) {
    const shown = messages.slice(0, limit);
    const fresh = shown.map((m) => `${m.id}:${extra(m)}`).join("\n");
    if (list.dataset.rendered !== fresh) {
      list.replaceChildren(...shown.map((m) => messageItem(m, extra)));
      list.dataset.rendered = fresh;
    }
    list.dataset.count = String(messages.length);
    refreshTimes(list);
    onCount(messages.length);
  }
  return poll("/api/messages", 1000, (body) => render(body.messages));
}

// The sandbox page's panel: when the page sent the email, the trace's clock says when it was accepted.
export function startMailbox(list, results) {
  return watchMailbox(list, {
    extra: (message) => {
      const accepted = message.trace_id ? results.acceptedMs(message.trace_id) : null;
      return accepted !== null ? `, accepted ${formatMs(accepted)} after the server had the request` : "";
    },
  });
}
