// Show a trace page inline, in a same-origin frame that grows to fit its content.
export function showTrace(card, frame, traceId, kinds) {
  const query = new URLSearchParams({ embedded: "1" });
  if (kinds && kinds.length) query.set("kinds", kinds.join(","));
  frame.src = `/traces/${encodeURIComponent(traceId)}?${query}`;
  card.hidden = false;
  frame.addEventListener("load", () => {
    const body = frame.contentDocument && frame.contentDocument.body;
    if (!body) return;
    const fit = () => { frame.style.height = `${body.scrollHeight + 16}px`; };
    fit();
    new ResizeObserver(fit).observe(body);
  }, { once: true });
  card.scrollIntoView({ behavior: "smooth", block: "start" });
}
