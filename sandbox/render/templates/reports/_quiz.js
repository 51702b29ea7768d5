// Instant feedback for the quiz: the first answer to a question counts; the explanation shows either way. Right and
// wrong are said in words (and in aria-pressed / aria-disabled), not by colour alone.
for (const quiz of document.querySelectorAll("[data-quiz]")) {
  const scoreLine = quiz.querySelector("[data-score-line]");
  const score = quiz.querySelector("[data-score]");
  const answered = quiz.querySelector("[data-answered]");
  for (const question of quiz.querySelectorAll(".question")) {
    const answer = Number(question.dataset.answer);
    const feedback = question.querySelector(".feedback");
    const options = question.querySelectorAll(".option");
    for (const option of options) {
      option.addEventListener("click", () => {
        if (question.dataset.done) return;
        question.dataset.done = "1";
        const right = Number(option.dataset.index) === answer;
        const rightOption = options[answer].textContent.trim(); // read before the marks below are added
        report(quiz, question, option);
        option.setAttribute("aria-pressed", "true");
        for (const other of options) other.setAttribute("aria-disabled", "true");
        option.classList.add(right ? "right" : "wrong");
        options[answer].classList.add("right");
        mark(options[answer], "the right answer");
        if (!right) mark(option, "your answer");
        feedback.className = "feedback " + (right ? "right" : "wrong");
        // Each option's feedback was chosen from this run's facts; both verdicts name the right option.
        feedback.textContent = right ? `Right: ${rightOption}. ${option.dataset.feedback}` :
          `Not quite: the answer is ${rightOption}. ${option.dataset.feedback}`;
        feedback.hidden = false;
        question.querySelector(".explanation").hidden = false;
        if (right) score.textContent = String(Number(score.textContent) + 1);
        answered.textContent = String(Number(answered.textContent) + 1);
        scoreLine.hidden = false;
      });
    }
  }
}

// Served by the sandbox, the page tells it the first answer to each question (for the instructor's view, which
// judges it against this same trace); a written file has no server to tell. A failure changes nothing here.
function report(quiz, question, option) {
  const url = quiz.dataset.answersUrl;
  if (!url) return;
  fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ kind: question.dataset.kind, choice: Number(option.dataset.index), option: option.dataset.option }),
  }).catch(() => {});
}

function mark(option, words) {
  const note = document.createElement("span");
  note.className = "mark";
  note.textContent = ` (${words})`;
  option.append(note);
}
