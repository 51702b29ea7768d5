// Step through a recorded trace like Python Tutor: one step at a time, with its state, key moment and source line.
for (const stepper of document.querySelectorAll("[data-stepper]")) {
  const data = JSON.parse(stepper.querySelector("[data-trace-steps]").textContent);
  const rows = data.rows;
  const root = stepper.closest("main") || document;
  const slider = stepper.querySelector("[data-slider]");
  const position = stepper.querySelector("[data-position]");
  let current = 1;

  function show(step) {
    current = Math.min(Math.max(step, 1), rows.length);
    const row = rows[current - 1];
    const previous = rows[current - 2];
    slider.value = String(current);
    position.textContent = `Step ${current} of ${rows.length}`;
    stepper.querySelector("[data-meta]").textContent = `Step ${current} at ${row.time} on ${row.thread}`;
    stepper.querySelector("[data-action]").textContent = row.action;
    for (const line of stepper.querySelectorAll("[data-var]")) {
      const name = line.dataset.var;
      const cell = line.querySelector("td");
      cell.textContent = row[name] || "—";
      const changed = name !== "output" && previous !== undefined && previous[name] !== row[name]; // step 1: no before
      cell.classList.toggle("changed", changed);
    }
    const moment = data.moments[String(current)];
    const momentBox = stepper.querySelector("[data-moment]");
    momentBox.textContent = "";
    if (moment) {
      const title = document.createElement("strong");
      title.textContent = moment.title + " ";
      momentBox.append(title, moment.text);
    }
    for (const tr of root.querySelectorAll("tr[data-step]")) {
      const isCurrent = Number(tr.dataset.step) === current;
      tr.classList.toggle("current", isCurrent);
      if (isCurrent) tr.setAttribute("aria-current", "step"); else tr.removeAttribute("aria-current");
    }
    for (const pane of stepper.querySelectorAll("[data-pane]")) {
      const marks = row.marks.filter((mark) => mark.pane === pane.dataset.pane);
      const pre = pane.querySelector("pre.code");
      const where = pane.querySelector("[data-where]");
      if (!pre || !where) continue;
      for (const line of pre.querySelectorAll(".code-line")) {
        line.classList.remove("current-line", "held-line");
        line.removeAttribute("aria-current");
        line.removeAttribute("title");
      }
      where.textContent = "";
      let focus = null;
      for (const mark of marks) {
        const line = pre.querySelector(`.code-line[data-line="${mark.line}"]`);
        const item = document.createElement("li");
        const who = document.createElement("strong");
        who.textContent = mark.thread;
        item.append(who, ` at line ${mark.line}: ${mark.note}`);
        item.className = mark.current ? "current" : "held";
        where.append(item);
        if (!line) continue;
        line.classList.add(mark.current ? "current-line" : "held-line");
        line.title = `${mark.thread}: ${mark.note}`;
        if (mark.current) line.setAttribute("aria-current", "true");
        if (mark.current || !focus) focus = line;
      }
      if (focus) pre.scrollTop = Math.max(0, focus.offsetTop - pre.clientHeight / 2);
    }
  }

  const moves = { first: () => 1, back: () => current - 1, forward: () => current + 1, last: () => rows.length };
  for (const button of stepper.querySelectorAll("[data-go]")) {
    button.addEventListener("click", () => show(moves[button.dataset.go]()));
  }
  slider.addEventListener("input", () => show(Number(slider.value)));
  // The keys belong to the stepper: they step only while the focus is in it (the slider keeps its own keys).
  stepper.addEventListener("keydown", (event) => {
    if (event.target === slider || event.altKey || event.ctrlKey || event.metaKey) return;
    const keys = { ArrowRight: moves.forward, ArrowLeft: moves.back, Home: moves.first, End: moves.last };
    if (keys[event.key]) {
      event.preventDefault();
      show(keys[event.key]());
    }
  });
  // Every "step N" link on the page (key moments, quiz explanations) moves the stepper there and gives it the focus.
  root.addEventListener("click", (event) => {
    const link = event.target.closest && event.target.closest('a[href^="#step-"]');
    if (!link) return;
    const step = Number(link.getAttribute("href").slice("#step-".length));
    if (!Number.isInteger(step)) return;
    event.preventDefault();
    show(step);
    stepper.focus({ preventScroll: true });
    stepper.scrollIntoView({ block: "nearest" });
  });
  show(1);
}

// Printing shows everything: folded sections open first.
window.addEventListener("beforeprint", () => {
  for (const fold of document.querySelectorAll("details.fold")) fold.open = true;
});
