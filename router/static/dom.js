// Tiny DOM helpers: build elements declaratively, format values for people.

/**
 * Create an element: h("button", {class: "x", onclick: fn, dataset: {testid: "y"}}, "text", child).
 * Attributes whose value is null, undefined or false are left out.
 */
export function h(tag, attrs = {}, ...children) {
  const el = tag === "svg" || SVG_TAGS.has(tag)
    ? document.createElementNS("http://www.w3.org/2000/svg", tag)
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      for (const [k, v] of Object.entries(value)) el.dataset[k] = v;
    } else if (key === "testid") {
      el.setAttribute("data-testid", value);
    } else if (key === "value" && "value" in el && !(el instanceof SVGElement)) {
      el.value = value;
    } else if (key === "checked" || key === "disabled" || key === "selected") {
      el[key] = Boolean(value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

const SVG_TAGS = new Set([
  "g", "rect", "circle", "path", "line", "text", "title", "defs", "marker", "polygon", "tspan",
]);

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace every child of `el` with `children`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Call `fn` once `ms` have passed without another call. */
export function debounce(fn, ms) {
  let timer = null;
  const debounced = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  /** Drop the call that is waiting, if any. */
  debounced.cancel = () => clearTimeout(timer);
  return debounced;
}

/** "850 ms", "3.2 s", "2 min 5 s"; an em dash when unknown. */
export function formatDuration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** "12 s ago", "5 min ago", or a local date for older times. */
export function formatAgo(iso) {
  if (!iso) return "—";
  const seconds = (Date.now() - Date.parse(iso)) / 1000;
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${Math.round(seconds)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleString();
}

/** A coloured status pill. */
export function statusBadge(status, testid = "status") {
  return h("span", { class: `badge status-${status}`, testid }, status);
}
