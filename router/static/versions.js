// A stored pipeline's versions: the list, the toolbar that saves and picks them, one shown read-only.

import { api } from "./api.js";
import { specGraph } from "./canvas.js";
import { formatAgo, h } from "./dom.js";

/** `{name, versions: [...], active_version}` of a stored pipeline. */
export async function loadVersions(name) {
  const versions = await api.versions(name);
  const active = versions.find((v) => v.active_version != null)?.active_version ?? null;
  return { name, versions, active_version: active };
}

/**
 * The builder's toolbar: the pipeline's name, its version picker, the validation pill, the actions.
 *
 * saved: loadVersions' answer, or null for a new pipeline; viewing: the version shown, or null.
 * onView(version or null), onRemove(), onSave().
 */
export function toolbar(saved, viewing, { onView, onRemove, onSave }) {
  const versions = saved?.versions ?? [];
  return [
    h("div", { class: "toolbar-title" },
      h("h2", {}, saved ? saved.name : "New pipeline"),
      saved ? h("span", { class: "muted", testid: "current-version" },
        `${versions.length} version${versions.length === 1 ? "" : "s"} · active v${saved.active_version ?? "?"}`) : null),
    saved ? h("label", { class: "inline" }, "Versions ",
      h("select", {
        testid: "version-picker",
        onchange: (e) => onView(Number(e.target.value) || null),
      },
      h("option", { value: "" }, "view a version…"),
      [...versions].reverse().map((v) => h("option", { value: v.version, selected: viewing?.version === v.version },
        `v${v.version}${v.version === saved.active_version ? " (active)" : ""} · ${formatAgo(v.created_at)}`)))) : null,
    h("span", { class: "spacer" }),
    h("span", { class: "validation idle", testid: "validation-status", role: "status", "aria-live": "polite" }, ""),
    saved ? h("button", { type: "button", class: "ghost danger", onclick: () => onRemove(), testid: "delete" }, "Delete") : null,
    h("a", { class: "button ghost", href: "#/builder/new" }, "New"),
    h("button", { type: "button", class: "primary", testid: "save", onclick: () => onSave() }, "Save"),
  ];
}

/**
 * One stored version (GET .../versions/{v}), read-only.
 *
 * active: whether it is the active version; parts: name -> part; onActivate(), onEdit(), onClose().
 */
export function versionView(v, { active, parts, onActivate, onEdit, onClose }) {
  return h("section", { class: "panel version-view", testid: "version-view", "aria-label": `version ${v.version}` },
    h("header", {},
      h("h3", {}, `${v.name} · version ${v.version}`),
      active ? h("span", { class: "badge status-succeeded", testid: "active-badge" }, "active") : null,
      h("span", { class: "muted" }, `saved ${formatAgo(v.created_at)} · read-only`),
      h("span", { class: "spacer" }),
      active ? null : h("button", { type: "button", class: "primary", testid: "activate", onclick: () => onActivate() }, "Make active"),
      h("button", { type: "button", testid: "edit-version", onclick: () => onEdit() }, "Edit from this version"),
      h("button", { type: "button", class: "ghost", "aria-label": "close", onclick: () => onClose() }, "✕")),
    specGraph(v.spec, parts),
    h("p", { class: "muted small" }, v.spec.steps.map((s) => `${s.id}: ${s.function}${Object.keys(s.params).length ? ` ${JSON.stringify(s.params)}` : ""}`).join(" · ")));
}
