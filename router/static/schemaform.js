// Forms generated from a part's params JSON Schema (as pydantic writes it).

import { h } from "./dom.js";

/** The field's effective schema: `{kind, nullable, schema}` with anyOf [X, null] unwrapped. */
export function fieldKind(prop) {
  let schema = prop;
  let nullable = false;
  if (Array.isArray(prop.anyOf)) {
    const others = prop.anyOf.filter((s) => s.type !== "null");
    nullable = others.length < prop.anyOf.length;
    schema = { ...others[0], ...prop, anyOf: undefined };
    if (others[0]?.type) schema.type = others[0].type;
  }
  let kind = "string";
  if (Array.isArray(schema.enum)) kind = "enum";
  else if (schema.type === "boolean") kind = "boolean";
  else if (schema.type === "integer" || schema.type === "number") kind = schema.type;
  else if (schema.type === "array") kind = "list";
  return { kind, nullable, schema };
}

function placeholderOf(schema, nullable) {
  const d = schema.default;
  if (d === undefined) return nullable ? "none" : "";
  if (d === null) return "none";
  if (Array.isArray(d)) return d.join(", ");
  return String(d);
}

/** Parse what the user typed into the param's JSON value; `undefined` means "not set". */
export function parseInput(kind, raw) {
  const text = raw.trim();
  if (text === "") return undefined;
  if (kind === "integer" || kind === "number") {
    const n = Number(text);
    return Number.isFinite(n) ? n : text; // a non-number goes to the server, which says why
  }
  if (kind === "list") return text.split(",").map((s) => s.trim()).filter(Boolean);
  return text;
}

function displayValue(kind, value) {
  if (value === undefined || value === null) return "";
  if (kind === "list" && Array.isArray(value)) return value.join(", ");
  return String(value);
}

function input(kind, schema, nullable, value, attrs) {
  if (kind === "enum") {
    const first = schema.default !== undefined
      ? `default (${schema.default})`
      : nullable ? "none" : "choose…";
    return h("select", attrs,
      h("option", { value: "" }, first),
      schema.enum.map((option) => h("option", { value: option, selected: value === option }, option)));
  }
  if (kind === "boolean") {
    const checked = value ?? schema.default ?? false;
    return h("input", { ...attrs, type: "checkbox", checked });
  }
  const numeric = kind === "integer" || kind === "number";
  return h("input", {
    ...attrs,
    type: numeric ? "number" : "text",
    inputmode: numeric ? (kind === "integer" ? "numeric" : "decimal") : null,
    min: schema.minimum ?? schema.exclusiveMinimum,
    max: schema.maximum ?? schema.exclusiveMaximum,
    step: numeric ? (schema.multipleOf ?? (kind === "integer" ? 1 : "any")) : null,
    placeholder: placeholderOf(schema, nullable),
    value: displayValue(kind, value),
    spellcheck: "false",
  });
}

function hint(kind, schema) {
  const parts = [];
  if (schema.description) parts.push(schema.description);
  const lo = schema.minimum ?? schema.exclusiveMinimum;
  const hi = schema.maximum ?? schema.exclusiveMaximum;
  if (lo !== undefined && hi !== undefined) parts.push(`${lo}–${hi}`);
  if (kind === "list") parts.push("comma-separated");
  return parts.join(" · ");
}

/**
 * One field per schema property.
 *
 * path: the JSON path of the params object ("steps[0].params"); each field's wrapper
 * carries `data-field="<path>.<name>"` so validation problems find their place.
 * onChange(name, value): value `undefined` removes the param.
 */
export function paramsForm(schema, params, path, { onChange, readOnly = false } = {}) {
  const properties = schema?.properties ?? {};
  const required = new Set(schema?.required ?? []);
  const names = Object.keys(properties);
  if (names.length === 0) return h("p", { class: "muted" }, "No params.");
  return h("div", { class: "params" }, names.map((name) => {
    const { kind, nullable, schema: prop } = fieldKind(properties[name]);
    const id = `${path}.${name}`.replace(/[^a-zA-Z0-9_-]/g, "-");
    const control = input(kind, prop, nullable, params[name], {
      id, name, disabled: readOnly, testid: `param-${name}`, "aria-describedby": `${id}-hint`,
    });
    const read = () => (kind === "boolean" ? control.checked : parseInput(kind, control.value));
    control.addEventListener(kind === "boolean" || kind === "enum" ? "change" : "input", () => {
      onChange?.(name, read());
    });
    const label = prop.title ?? name;
    return h("div", { class: `field field-${kind}`, dataset: { field: `${path}.${name}` } },
      h("label", { for: id }, label, required.has(name) ? h("span", { class: "req", title: "required" }, " *") : null),
      control,
      h("small", { class: "hint", id: `${id}-hint` }, hint(kind, prop)),
      h("div", { class: "field-errors", role: "alert" }));
  }));
}
