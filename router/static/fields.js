// Builder form fields shared by the pipeline form and the step cards.

import { h } from "./dom.js";

/**
 * A checkbox field with a hint; `data-field="<path>"` lets validation problems find it.
 * onChange(checked) on every change.
 */
export function checkboxField(path, label, hint, checked, onChange) {
  const id = `check-${path.replace(/\W/g, "-")}`;
  const box = h("input", { id, type: "checkbox", checked, testid: `check-${path}` });
  box.addEventListener("change", () => onChange(box.checked));
  return h("div", { class: "field field-boolean", dataset: { field: path } },
    box, h("label", { for: id }, label), h("small", { class: "hint" }, hint),
    h("div", { class: "field-errors", role: "alert" }));
}
