// What the demo room pages share: chat lines, questions, and sending a form.
import { clearError, showError } from "/static/tapline.js";

export function chatLine(line) {
  const item = document.createElement("li");
  item.dataset.role = line.role;
  const who = document.createElement("strong");
  who.textContent = `${line.name}: `;
  item.append(who, document.createTextNode(line.text));
  return item;
}

// One question; `actions` (staff) adds buttons that call back with an action.
export function questionItem(question, actions = null) {
  const item = document.createElement("li");
  item.dataset.question = String(question.id);
  item.dataset.answered = String(question.answered);
  item.dataset.pinned = String(question.pinned);
  const text = document.createElement("span");
  text.textContent = `${question.name}: ${question.text}`;
  item.append(text);
  if (question.pinned) item.append(" 📌");
  if (question.answered) item.append(" ✓ answered");
  if (actions) {
    const choices = [
      question.answered ? ["reopen", "Reopen"] : ["answered", "Answered"],
      question.pinned ? ["unpin", "Unpin"] : ["pin", "Pin"],
      ["dismiss", "Dismiss"],
    ];
    for (const [action, words] of choices) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = `q-${action}`;
      button.textContent = words;
      button.addEventListener("click", () => actions(question.id, action));
      item.append(" ", button);
    }
  }
  return item;
}

// Send a chat line or a question from a form; errors (too long, too fast) in words.
export async function send(event, signal, errorEl, type, fields, input) {
  event.preventDefault();
  try {
    await signal.request(type, fields);
    input.value = "";
    clearError(errorEl);
  } catch (error) {
    showError(errorEl, error);
  }
}
