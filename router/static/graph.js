// The step DAG as SVG: a layered layout by depth (left to right), computed here.

import { h } from "./dom.js";

const NODE_W = 168;
const NODE_H = 54;
const GAP_X = 56;
const GAP_Y = 20;
const PAD = 14;
const END_W = 124; // the trigger and output end caps
const ARC_ROOM = 16; // room above the top row for edges that arc over a column

/**
 * Each node's depth: 0 without parents, else one more than its deepest parent.
 * Unknown parents are ignored and a cycle cannot loop forever.
 */
export function depths(nodes) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const memo = new Map();
  const visit = (id, path) => {
    if (memo.has(id)) return memo.get(id);
    if (path.has(id)) return 0;
    path.add(id);
    const parents = (byId.get(id)?.after ?? []).filter((p) => byId.has(p));
    const depth = parents.length ? 1 + Math.max(...parents.map((p) => visit(p, path))) : 0;
    path.delete(id);
    memo.set(id, depth);
    return depth;
  };
  for (const n of nodes) visit(n.id, new Set());
  return memo;
}

/** Whether the edge from `parent` to `child` passes over a column of steps. */
function skips(depthOf, parent, child) {
  return depthOf.get(child) - depthOf.get(parent) > 1;
}

/**
 * Positions `{x, y}` for each node id, each node's depth, the drawing's
 * width and height, and the height of the middle of its rows.
 */
export function layout(nodes, { ends = false } = {}) {
  const depthOf = depths(nodes);
  const layers = [];
  for (const n of nodes) (layers[depthOf.get(n.id)] ??= []).push(n.id);
  const rows = Math.max(1, ...layers.map((l) => l?.length ?? 0));
  const arcs = nodes.some((n) => n.after.some((p) => depthOf.has(p) && skips(depthOf, p, n.id)));
  const room = arcs ? ARC_ROOM : 0;
  const height = room + PAD * 2 + rows * NODE_H + (rows - 1) * GAP_Y;
  const left = PAD + (ends ? END_W + GAP_X : 0);
  const positions = new Map();
  layers.forEach((layer, depth) => {
    const span = layer.length * NODE_H + (layer.length - 1) * GAP_Y;
    const top = room + (height - room - span) / 2;
    layer.forEach((id, row) => {
      positions.set(id, { x: left + depth * (NODE_W + GAP_X), y: top + row * (NODE_H + GAP_Y) });
    });
  });
  const columns = Math.max(1, layers.length);
  const width = left + columns * NODE_W + (columns - 1) * GAP_X + PAD + (ends ? GAP_X + END_W : 0);
  // the middle of the rows, where the end caps go
  const centre = room + (height - room) / 2;
  return { positions, depthOf, width, height, centre };
}

function edgePath(x1, y1, x2, y2) {
  const bend = Math.max(24, (x2 - x1) / 2);
  return `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`;
}

/**
 * An edge that passes over a column: a curve whose middle is at height
 * `top` (in the gap above the rows it joins), so it is not drawn through the
 * steps in between. Returns the path and that middle point.
 */
function arcPath(x1, y1, x2, y2, top) {
  // A cubic's middle is at 1/8 of each end plus 3/8 of each control point.
  const control = (top - (y1 + y2) / 8) / 0.75;
  const bend = (x2 - x1) / 4;
  return {
    d: `M${x1},${y1} C${x1 + bend},${control} ${x2 - bend},${control} ${x2},${y2}`,
    middle: { x: (x1 + x2) / 2, y: top },
  };
}

function edge(d, attrs = {}) {
  const group = h("g", { class: "edge", ...attrs });
  group.append(h("path", { d, class: "edge-hit" }), h("path", { d, class: "edge-line", "marker-end": "url(#arrow)" }));
  return group;
}

/** A rounded cap at either end; `label` may have two lines ("bucket\nprefix*suffix"). */
function endCap(x, y, label, cls) {
  const lines = String(label).split("\n").slice(0, 2);
  const top = NODE_H / 2 + 4 - (lines.length - 1) * 7;
  return h("g", { class: `end ${cls}`, transform: `translate(${x},${y})` },
    h("title", {}, lines.join(" ")),
    h("rect", { width: END_W, height: NODE_H, rx: NODE_H / 2 }),
    h("text", { x: END_W / 2, y: top, "text-anchor": "middle" },
      lines.map((line, i) => h("tspan", { x: END_W / 2, dy: i ? 14 : 0, class: i ? "end-detail" : null }, clip(line, 17)))),
  );
}

function clip(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function nodeBox(node, pos, opts) {
  const cls = ["node", node.status ? `status-${node.status}` : "", node.group ? `group-${node.group}` : ""];
  if (opts.pending === node.id) cls.push("pending");
  if (opts.selected === node.id) cls.push("selected");
  const g = h("g", {
    class: cls.join(" "),
    transform: `translate(${pos.x},${pos.y})`,
    testid: `graph-node-${node.id}`,
    "data-status": node.status,
    tabindex: opts.onNodeClick ? 0 : null,
    role: opts.onNodeClick ? "button" : null,
    "aria-label": `${node.id} (${node.function})${node.status ? `: ${node.status}` : ""}`,
  },
  h("title", {}, `${node.id} · ${node.function}${node.status ? ` · ${node.status}` : ""}`),
  h("rect", { width: NODE_W, height: NODE_H, rx: 10 }),
  h("text", { x: 14, y: 23, class: "node-id" }, clip(node.id, 20)),
  h("text", { x: 14, y: 41, class: "node-fn" }, clip(node.sublabel ?? node.function, 24)));
  if (opts.onNodeClick) {
    g.addEventListener("click", () => opts.onNodeClick(node.id));
    g.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") opts.onNodeClick(node.id);
    });
  }
  if (opts.onConnect) {
    const inPort = h("circle", { class: "port port-in", cx: 0, cy: NODE_H / 2, r: 7, testid: `port-in-${node.id}` },
      h("title", {}, `connect into ${node.id}`));
    const outPort = h("circle", { class: "port port-out", cx: NODE_W, cy: NODE_H / 2, r: 7, testid: `port-out-${node.id}` },
      h("title", {}, `connect from ${node.id}`));
    inPort.addEventListener("click", (e) => { e.stopPropagation(); opts.onConnect("in", node.id); });
    outPort.addEventListener("click", (e) => { e.stopPropagation(); opts.onConnect("out", node.id); });
    g.append(inPort, outPort);
  }
  return g;
}

/**
 * Draw a DAG.
 *
 * nodes: [{id, function, after: [ids], status?, group?, sublabel?}]
 * opts: {source?: label, sink?: label, onNodeClick?, onConnect?(side, id),
 *        onEdgeClick?(parent, child), pending?, selected?, testid?}
 */
export function renderGraph(nodes, opts = {}) {
  const ends = Boolean(opts.source || opts.sink);
  const { positions, depthOf, width, height, centre } = layout(nodes, { ends });
  const svg = h("svg", {
    class: "graph", viewBox: `0 0 ${width} ${height}`, width, height,
    role: "img", "aria-label": `pipeline graph of ${nodes.length} steps`, testid: opts.testid ?? "graph",
  });
  svg.append(h("defs", {}, h("marker", {
    id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse",
  }, h("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow" }))));
  const ids = new Set(nodes.map((n) => n.id));
  const mid = NODE_H / 2;
  const hasChild = new Set(nodes.flatMap((n) => n.after.filter((p) => ids.has(p))));
  for (const node of nodes) {
    const to = positions.get(node.id);
    const parents = node.after.filter((p) => ids.has(p));
    for (const parent of parents) {
      const from = positions.get(parent);
      const [x1, y1, x2, y2] = [from.x + NODE_W, from.y + mid, to.x, to.y + mid];
      const { d, middle } = skips(depthOf, parent, node.id)
        ? arcPath(x1, y1, x2, y2, Math.min(from.y, to.y) - GAP_Y / 2)
        : { d: edgePath(x1, y1, x2, y2), middle: { x: (x1 + x2) / 2, y: (y1 + y2) / 2 } };
      const line = edge(d, { testid: `edge-${parent}-${node.id}` });
      if (node.fused) {
        line.classList.add("fused");
        line.append(h("title", {}, `${node.id} runs fused with ${parent}`));
      }
      if (opts.onEdgeClick) {
        // A handle at the curve's middle, which is in a gap, never under a
        // step: a target that is easy to hit and to find.
        line.classList.add("removable");
        line.append(h("title", {}, `remove ${parent} → ${node.id}`));
        line.append(h("g", {
          class: "edge-handle", transform: `translate(${middle.x},${middle.y})`,
          testid: `edge-remove-${parent}-${node.id}`, role: "button", tabindex: 0,
          "aria-label": `remove ${parent} → ${node.id}`,
        }, h("circle", { r: 8 }), h("path", { d: "M-3,-3 L3,3 M3,-3 L-3,3" })));
        const remove = () => opts.onEdgeClick(parent, node.id);
        line.addEventListener("click", remove);
        line.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") remove(); });
      }
      svg.append(line);
    }
    if (ends && parents.length === 0) {
      svg.append(edge(edgePath(PAD + END_W, centre, to.x, to.y + mid)));
    }
    if (ends && !hasChild.has(node.id)) {
      svg.append(edge(edgePath(to.x + NODE_W, to.y + mid, width - PAD - END_W, centre)));
    }
  }
  if (ends) {
    svg.append(endCap(PAD, centre - mid, opts.source ?? "trigger", "end-source"));
    svg.append(endCap(width - PAD - END_W, centre - mid, opts.sink ?? "output", "end-sink"));
  }
  for (const node of nodes) svg.append(nodeBox(node, positions.get(node.id), opts));
  return svg;
}
