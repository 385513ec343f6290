// The kpipe web page: hash routes to the builder, the runs and the upload views.

import { api, getToken, lastPipeline, rememberPipeline, setToken } from "./api.js";
import { Builder } from "./builder.js";
import { h, mount } from "./dom.js";
import { notify, notifyError } from "./notify.js";
import { RunsList, RunView } from "./runs.js";
import { Upload } from "./upload.js";

const main = document.getElementById("main");
let parts = null;
let current = null; // the view on screen; closed before the next one opens
let failed = false; // the last view could not be shown (a missing token, say)
let droppedFile = null;

async function catalogue() {
  parts ??= await api.functions();
  return parts;
}

/** "#/runs/abc" -> ["runs", "abc"]. */
function route() {
  return location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
}

async function show() {
  current?.close?.();
  current = null;
  const [view = "builder", ...rest] = route();
  for (const link of document.querySelectorAll("nav a")) {
    link.toggleAttribute("aria-current", link.dataset.view === view);
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
  }
  failed = false;
  try {
    if (view === "runs" && rest[0]) current = new RunView(main, rest[0]);
    else if (view === "runs") current = new RunsList(main);
    else if (view === "upload") current = new Upload(main, { pipeline: rest[0] ?? lastPipeline(), file: takeDropped() });
    else {
      current = new Builder(main, await catalogue());
      const name = rest[0] === "new" ? null : rest[0];
      await current.open(name, rest[1] === "v" ? rest[2] : null);
      if (name) rememberPipeline(name);
      return;
    }
    await current.open();
  } catch (error) {
    failed = true;
    mount(main, h("p", { class: "error" }, `Could not show this page: ${error.message}`));
    notifyError("Error", error);
  }
}

function takeDropped() {
  const file = droppedFile;
  droppedFile = null;
  return file;
}

/** Dropping an image anywhere on the page sends it to the upload view. */
function acceptDropsAnywhere() {
  window.addEventListener("dragover", (e) => {
    if (e.dataTransfer.types.includes("Files")) e.preventDefault();
  });
  window.addEventListener("drop", (e) => {
    const file = e.dataTransfer.files[0];
    if (!file) return;
    e.preventDefault();
    if (!file.type.startsWith("image/")) {
      notify(`${file.name} is not an image`, "error");
      return;
    }
    droppedFile = file;
    if (location.hash.startsWith("#/upload")) show();
    else location.hash = "#/upload";
  });
}

function settings() {
  const input = document.getElementById("token");
  input.value = getToken();
  document.getElementById("settings-form").addEventListener("submit", (e) => {
    e.preventDefault();
    setToken(input.value.trim());
    document.getElementById("settings").open = false;
    notify(input.value.trim() ? "API token saved in this browser" : "API token cleared", "success");
    // Show the view again with the new token, unless it is a builder whose draft would be lost.
    if (failed || !(current instanceof Builder)) show();
  });
}

window.addEventListener("hashchange", show);
acceptDropsAnywhere();
settings();
show();
