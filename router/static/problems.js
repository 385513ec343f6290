// Inline validation in the builder: each problem beside its field, and the status pill.

import { h } from "./dom.js";
import { parentPath } from "./spec.js";

/** Set the validation status pill; kind is "idle", "checking", "valid", "invalid", "saved" or "error". */
export function setStatus(root, kind, text) {
  const pill = root.querySelector('[data-testid="validation-status"]');
  if (!pill) return;
  pill.className = `validation ${kind}`;
  pill.textContent = text;
}

/**
 * Put each problem next to the field its path names (or the nearest enclosing one).
 *
 * root: the builder; problems: [{field, message}]; touched: whether the draft was edited;
 * name: the draft's name (an empty one gets a plainer message).
 */
export function showProblems(root, problems, { touched, name }) {
  for (const box of root.querySelectorAll("#builder-body .field-errors")) box.replaceChildren();
  for (const el of root.querySelectorAll("#builder-body .invalid")) el.classList.remove("invalid");
  for (const el of root.querySelectorAll("#builder-body [aria-invalid]")) el.removeAttribute("aria-invalid");
  const body = root.querySelector("#builder-body");
  if (!body) return;
  for (const problem of problems) {
    let path = problem.field || "$";
    let target = null;
    while (!target) {
      target = body.querySelector(`[data-field="${CSS.escape(path)}"]`);
      if (target || path === "$") break;
      path = parentPath(path);
    }
    target ??= body.querySelector('[data-field="$"]');
    const where = problem.field && problem.field !== path ? `${problem.field}: ` : "";
    const message = problem.field === "name" && !name.trim() ? "a pipeline needs a name" : problem.message;
    target.classList.add("invalid");
    target.querySelector(":scope > input, :scope > select")?.setAttribute("aria-invalid", "true");
    const box = target.querySelector(":scope > .field-errors") ?? target;
    box.append(h("p", { class: "error", testid: "field-error" }, where + message));
  }
  if (!touched && !problems.length) setStatus(root, "idle", "");
  else if (problems.length) {
    const n = problems.length;
    setStatus(root, "invalid", `${n} problem${n === 1 ? "" : "s"}`);
  } else setStatus(root, "valid", "✓ valid");
}
