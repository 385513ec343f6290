// The builder's canvas: the draft's step graph (a drop target for parts) and a stored spec's.

import { PART_MIME } from "./catalogue.js";
import { h } from "./dom.js";
import { renderGraph } from "./graph.js";
import { draftFromSpec, isFused } from "./spec.js";

/** The graph's second line of a step: its part, or its params when the id says the part. */
function sublabel(step) {
  if (step.id !== step.function) return step.function;
  const params = Object.entries(step.params).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(",") : v}`);
  return params.join(" ") || step.function;
}

function triggerLabel(trigger) {
  return `${trigger.bucket || "?"}\n${trigger.prefix}*${trigger.suffix}`;
}

/** The draft's steps as renderGraph's nodes; parts: name -> part. */
function stepNodes(draft, parts) {
  return draft.steps.map((s) => ({
    ...s, group: parts.get(s.function)?.group, sublabel: sublabel(s), fused: isFused(draft, s),
  }));
}

/** The canvas section, whose `#graph-holder` draftGraph fills; onDropPart(name) on a drop. */
export function canvas(onDropPart) {
  const zone = h("section", { class: "canvas drop-target", testid: "canvas", "aria-label": "pipeline graph" },
    h("div", { id: "graph-holder" }));
  zone.addEventListener("dragover", (e) => {
    if (!e.dataTransfer.types.includes(PART_MIME)) return;
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    const part = e.dataTransfer.getData(PART_MIME);
    zone.classList.remove("over");
    if (!part) return;
    e.preventDefault();
    onDropPart(part);
  });
  return zone;
}

/**
 * The draft's editable graph and a line of help, for `#graph-holder`.
 *
 * opts: {pending, selected, onNodeClick(id), onConnect(side, id), onEdgeClick(parent, child)}
 */
export function draftGraph(draft, parts, { pending, selected, onNodeClick, onConnect, onEdgeClick }) {
  if (draft.steps.length === 0) return h("p", { class: "empty" }, "Drop parts here, or click them in the catalogue.");
  return [
    renderGraph(stepNodes(draft, parts), {
      source: triggerLabel(draft.trigger),
      sink: draft.output.bucket || "?",
      pending,
      selected,
      onNodeClick,
      onConnect,
      onEdgeClick,
      testid: "builder-graph",
    }),
    h("p", { class: "muted small graph-help" }, pending
      ? `Now click the input port (left dot) of the step that should run after ${pending}.`
      : "Connect: click a step's output port (right dot), then another step's input port. Click a line to remove it."),
  ];
}

/** A stored spec's graph, read-only. */
export function specGraph(spec, parts) {
  return h("div", { class: "canvas readonly" }, renderGraph(stepNodes(draftFromSpec(spec), parts), {
    source: triggerLabel(spec.trigger),
    sink: spec.output.bucket, testid: "version-graph",
  }));
}
