// The plain comparison page: each click POSTs to a send route and shows how long the answer took.
const results = document.getElementById("results");
const labels = { sync: "Send (blocking)", thread: "Send (thread)" };

function addRow(cells, isError) {
  const row = document.createElement("tr");
  for (const text of cells) {
    const cell = document.createElement("td");
    cell.textContent = text;  // never innerHTML: every value is shown as text
    if (isError) cell.className = "error";
    row.append(cell);
  }
  results.prepend(row);
}

async function send(button) {
  const mode = button.dataset.mode;
  button.setAttribute("aria-busy", "true");
  const started = performance.now();
  try {
    const response = await fetch(`/send-email/${mode}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    const body = await response.json();
    const waited = `${Math.round(performance.now() - started)} ms`;
    const detail = body.error ? `${body.trace_id || ""} ${body.error}` : body.trace_id;
    addRow([labels[mode] || mode, String(response.status), waited, detail], !response.ok);
  } catch (err) {
    addRow([labels[mode] || mode, "no answer", "", String(err)], true);
  } finally {
    button.removeAttribute("aria-busy");
  }
}

for (const button of document.querySelectorAll("button[data-mode]")) {
  button.addEventListener("click", () => send(button));
}
