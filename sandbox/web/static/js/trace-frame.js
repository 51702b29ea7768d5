// Show a trace page inline, in a same-origin frame that grows to fit its content. When the student asked for it
// (`focus`), the card scrolls into view and the stepper takes the keyboard focus, so its arrow keys work at once.
export function showTrace(card, frame, traceId, kinds, { focus = true } = {}) {
  const query = new URLSearchParams({ embedded: "1" });
  if (kinds && kinds.length) query.set("kinds", kinds.join(","));
  frame.src = `/traces/${encodeURIComponent(traceId)}?${query}`;
  card.hidden = false;
  frame.addEventListener("load", () => {
    const inner = frame.contentDocument;
    const body = inner && inner.body;
    if (!body) return;
    const fit = () => { frame.style.height = `${body.scrollHeight + 16}px`; };
    fit();
    new ResizeObserver(fit).observe(body);
    const stepper = inner.querySelector("[data-stepper]");
    if (focus && stepper) {
      frame.focus();
      stepper.focus({ preventScroll: true });
    }
  }, { once: true });
  if (focus) card.scrollIntoView({ behavior: "smooth", block: "start" });
}
