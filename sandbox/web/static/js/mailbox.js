// The mailbox panel: what the sink accepted, newest first, polled once a second.
import { formatMs, poll } from "./api.js";

export function startMailbox(list, results) {
  function render(messages) {
    const items = messages.map((message) => {
      const item = document.createElement("li");
      item.dataset.messageId = String(message.id);
      if (message.trace_id) item.dataset.traceId = message.trace_id;
      const link = document.createElement("a");
      link.href = `/mailbox/${message.id}`;
      link.textContent = `#${message.id} ${message.subject}`;
      const detail = document.createElement("span");
      detail.className = "meta";
      // The trace's clock when this page sent the email; otherwise the sink's wall-clock stamp.
      const accepted = message.trace_id ? results.acceptedMs(message.trace_id) : null;
      const when = accepted !== null ? `accepted ${formatMs(accepted)} after the server had the request` : `received ${message.received_at}`;
      detail.textContent = ` to ${message.rcpt_tos.join(", ")}, ${when}`;
      item.append(link, detail);
      return item;
    });
    const fresh = items.map((i) => i.textContent).join("\n");
    if (list.dataset.rendered !== fresh) {
      list.replaceChildren(...items);
      list.dataset.rendered = fresh;
    }
    list.dataset.count = String(messages.length);
  }

  return poll("/api/messages", 1000, (body) => render(body.messages.slice(0, 20)));
}
