// Instant feedback for the quiz: the first answer to a question counts; the explanation shows either way.
for (const quiz of document.querySelectorAll("[data-quiz]")) {
  const score = quiz.querySelector("[data-score]");
  for (const question of quiz.querySelectorAll(".question")) {
    const answer = Number(question.dataset.answer);
    const feedback = question.querySelector(".feedback");
    for (const option of question.querySelectorAll(".option")) {
      option.addEventListener("click", () => {
        if (question.dataset.done) return;
        question.dataset.done = "1";
        const right = Number(option.dataset.index) === answer;
        option.classList.add(right ? "right" : "wrong");
        question.querySelectorAll(".option")[answer].classList.add("right");
        feedback.className = "feedback " + (right ? "right" : "wrong");
        // Each option's feedback was chosen from this run's facts; a wrong pick also names the right option.
        const rightOption = question.querySelectorAll(".option")[answer].textContent;
        feedback.textContent = right ? option.dataset.feedback : `Not quite. ${option.dataset.feedback} The answer is ${rightOption}.`;
        feedback.hidden = false;
        question.querySelector(".explanation").hidden = false;
        if (right) score.textContent = String(Number(score.textContent) + 1);
      });
    }
  }
}
