// The pipeline's own settings: name, description, the trigger it listens to and its output.

import { h } from "./dom.js";
import { checkboxField } from "./fields.js";

function textField(path, label, value, onInput, attrs = {}) {
  const id = `meta-${path.replace(/\W/g, "-")}`;
  const { hint, ...rest } = attrs;
  const control = h("input", { id, type: "text", value, spellcheck: "false", testid: `meta-${path}`, ...rest });
  control.addEventListener("input", () => onInput(control.value));
  return h("div", { class: "field", dataset: { field: path } },
    h("label", { for: id }, label), control,
    hint ? h("small", { class: "hint" }, hint) : null,
    h("div", { class: "field-errors", role: "alert" }));
}

/**
 * The settings panel; every edit writes into `draft`, then calls onChange().
 *
 * saved: whether the pipeline is stored already (its name is then fixed).
 */
export function pipelineForm(draft, { saved, onChange }) {
  const d = draft;
  const edit = (set) => (value) => {
    set(value);
    onChange();
  };
  return h("section", { class: "panel meta", "aria-label": "pipeline settings" },
    h("div", { class: "meta-row" },
      textField("name", "Name", d.name, edit((v) => { d.name = v; }), {
        placeholder: "privacy-blur", readonly: saved ? true : null,
        hint: saved ? "A saved pipeline keeps its name; New starts another." : "Lowercase letters, digits and dashes.",
      }),
      textField("description", "Description", d.description, edit((v) => { d.description = v; }), { placeholder: "what it does" })),
    h("div", { class: "meta-row" },
      h("fieldset", { dataset: { field: "trigger" } },
        h("legend", {}, "Trigger: uploads to"),
        textField("trigger.bucket", "Bucket", d.trigger.bucket, edit((v) => { d.trigger.bucket = v; })),
        textField("trigger.prefix", "Key prefix", d.trigger.prefix, edit((v) => { d.trigger.prefix = v; }), { placeholder: "any" }),
        textField("trigger.suffix", "Key suffix", d.trigger.suffix, edit((v) => { d.trigger.suffix = v; }), { placeholder: "any" }),
        h("div", { class: "field-errors", role: "alert" })),
      h("fieldset", { dataset: { field: "output" } },
        h("legend", {}, "Output"),
        textField("output.bucket", "Bucket", d.output.bucket, edit((v) => { d.output.bucket = v; })),
        checkboxField("fuse", "Fuse chains", "Run each single-parent chain in one invocation; only the last step writes an image.",
          d.fuse, edit((v) => { d.fuse = v; })),
        h("div", { class: "field-errors", role: "alert" }))));
}
