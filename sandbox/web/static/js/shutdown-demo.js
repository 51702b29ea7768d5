// The shutdown demonstration: POST /api/demos/shutdown stops real processes mid-send, each a different way, and
// answers what happened to each email; this fills the table with it.
export function startShutdownDemo(button, status, table) {
  button.addEventListener("click", async () => {
    button.disabled = true;
    status.textContent = "Starting five processes and stopping each while its worker waits…";
    try {
      const response = await fetch("/api/demos/shutdown", { method: "POST", headers: { Accept: "application/json" } });
      const body = await response.json();
      if (response.status !== 200) {
        status.textContent = `The demonstration could not run: ${body.error}`;
        return;
      }
      const rows = body.cases.map((outcome) => {
        const row = document.createElement("tr");
        row.dataset.case = outcome.case;
        row.dataset.delivered = String(outcome.delivered);
        for (const text of [outcome.label, outcome.delivered ? "yes" : "no", outcome.summary]) {
          const cell = document.createElement("td");
          cell.textContent = text;
          row.append(cell);
        }
        return row;
      });
      table.tBodies[0].replaceChildren(...rows);
      table.hidden = false;
      const delivered = body.cases.filter((outcome) => outcome.delivered).length;
      status.textContent = `Done: ${delivered} of ${body.cases.length} emails arrived.`;
    } catch (error) {
      status.textContent = `The demonstration stopped: ${error.message || error}`;
    } finally {
      button.disabled = false;
    }
  });
}
