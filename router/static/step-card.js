// One step's card in the builder: its id, what it runs after, its condition, fusing and params.

import { h } from "./dom.js";
import { checkboxField } from "./fields.js";
import { paramsForm } from "./schemaform.js";
import { descendants } from "./spec.js";

/**
 * The card of `step`, the `index`th of `steps`; `when`, fuse and params edits write into `step`.
 *
 * opts: {part (undefined when unknown), selected, onRename(id), onRemove(), onToggleAfter(parent),
 *        onChange({graph}?) after an edit written into `step`}
 */
export function stepCard(step, index, steps, { part, selected, onRename, onRemove, onToggleAfter, onChange }) {
  const path = `steps[${index}]`;
  const later = descendants(steps, step.id);
  const candidates = steps.filter((s) => s.id !== step.id && !later.has(s.id));
  const idInput = h("input", { type: "text", value: step.id, spellcheck: "false", testid: "step-id", id: `${path}-id`, "aria-label": "step id" });
  idInput.addEventListener("change", () => onRename(idInput.value.trim()));
  const when = h("input", { type: "text", value: step.when, spellcheck: "false", id: `${path}-when`, testid: "step-when", placeholder: "always (CEL, e.g. faces.count > 0 && \"cat\" in objects.labels)", title: "A CEL expression over the metadata of the steps this one waits for; a missing field counts as false" });
  when.addEventListener("input", () => {
    step.when = when.value;
    onChange();
  });
  return h("article", {
    class: `step-card group-${part?.group ?? "unknown"}${selected ? " selected" : ""}`,
    testid: `step-${step.id}`, dataset: { field: path, step: step.id },
    "aria-label": `step ${step.id}`,
  },
  h("header", {},
    h("span", { class: "step-fn" }, step.function),
    h("div", { class: "field step-id", dataset: { field: `${path}.id` } },
      h("label", { for: `${path}-id`, class: "sr-only" }, "id"), idInput,
      h("div", { class: "field-errors", role: "alert" })),
    h("button", { type: "button", class: "ghost danger", testid: "remove-step", "aria-label": `remove ${step.id}`, onclick: () => onRemove() }, "Remove")),
  part ? h("p", { class: "muted small" }, part.summary) : h("p", { class: "error" }, `unknown part ${step.function}`),
  h("div", { class: "field", dataset: { field: `${path}.after` } },
    h("span", { class: "label" }, "Runs after"),
    h("div", { class: "chips", role: "group", "aria-label": `${step.id} runs after` },
      candidates.length === 0 ? h("span", { class: "muted small" }, "the upload (first step)") : null,
      candidates.map((c) => h("button", {
        type: "button", class: "chip", "aria-pressed": String(step.after.includes(c.id)),
        testid: `after-${c.id}`, onclick: () => onToggleAfter(c.id),
      }, c.id))),
    h("div", { class: "field-errors", role: "alert" })),
  h("div", { class: "field", dataset: { field: `${path}.when` } },
    h("label", { for: `${path}-when` }, "Only when"), when,
    h("div", { class: "field-errors", role: "alert" })),
  step.after.length === 1
    ? checkboxField(`${path}.fuse`, `Fuse with ${step.after[0]}`, "Run in the same invocation as the step before (no intermediate image).",
      step.fuse, (v) => {
        step.fuse = v;
        onChange({ graph: true });
      })
    : null,
  h("details", { class: "params-box", open: true },
    h("summary", {}, "Params"),
    h("div", { dataset: { field: `${path}.params` } },
      paramsForm(part?.params, step.params, `${path}.params`, {
        onChange: (name, value) => {
          if (value === undefined) delete step.params[name];
          else step.params[name] = value;
          onChange({ graph: true });
        },
      }),
      h("div", { class: "field-errors", role: "alert" }))),
  h("div", { class: "field-errors", role: "alert" }));
}
