// The parts catalogue: every part by group; click one to add it, or drag it onto the canvas.

import { h } from "./dom.js";

const GROUPS = [
  ["pre-processing", "Pre-processing"],
  ["ai", "AI"],
  ["post-processing", "Post-processing"],
];

/** The drag data type that carries a part's name from the catalogue to the canvas. */
export const PART_MIME = "application/x-kpipe-part";

function partButton(part, onAdd) {
  const button = h("button", {
    type: "button", class: `part group-${part.group}`, draggable: "true", testid: `part-${part.name}`,
    title: part.summary, onclick: () => onAdd(part.name),
  },
  h("span", { class: "part-name" }, part.name),
  part.output === "detections" ? h("span", { class: "tag" }, "detections") : null,
  h("span", { class: "part-summary" }, part.summary));
  button.addEventListener("dragstart", (e) => {
    e.dataTransfer.setData(PART_MIME, part.name);
    e.dataTransfer.effectAllowed = "copy";
  });
  return button;
}

/** parts: name -> part (GET /v1/functions); onAdd(name) when a part is clicked. */
export function catalogue(parts, onAdd) {
  return h("aside", { class: "catalogue", "aria-label": "Parts", testid: "catalogue" },
    h("h2", {}, "Parts"),
    h("p", { class: "muted small" }, "Click a part to add it after the selected step, or drag it onto the canvas."),
    GROUPS.map(([group, title]) => h("section", { class: `part-group group-${group}`, testid: `group-${group}` },
      h("h3", {}, title),
      [...parts.values()].filter((p) => p.group === group).map((p) => partButton(p, onAdd)))));
}
