// Upload: drop an image (or pick one) to run a chosen pipeline on it, then follow the run.

import { api } from "./api.js";
import { h, mount } from "./dom.js";
import { describeError, notifyError } from "./notify.js";

const FIND_RUN_TIMEOUT_MS = 30_000;
const FIND_RUN_EVERY_MS = 500;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class Upload {
  constructor(root, { pipeline = "", file = null } = {}) {
    this.root = root;
    this.pipeline = pipeline;
    this.pendingFile = file;
    this.closed = false;
  }

  async open() {
    let pipelines = [];
    try {
      pipelines = await api.pipelines();
    } catch (error) {
      notifyError("Could not list pipelines", error);
    }
    this.pipelines = new Map(pipelines.map((p) => [p.name, p]));
    if (!this.pipelines.has(this.pipeline)) this.pipeline = pipelines[0]?.name ?? "";
    const picker = h("select", { id: "upload-pipeline", testid: "upload-pipeline", onchange: (e) => { this.pipeline = e.target.value; this.describe(); } },
      pipelines.length ? null : h("option", { value: "" }, "no pipelines yet"),
      pipelines.map((p) => h("option", { value: p.name, selected: p.name === this.pipeline }, `${p.name} (v${p.active_version ?? p.version})`)));
    const input = h("input", { type: "file", accept: "image/*", id: "upload-file", testid: "file-input", class: "sr-only" });
    input.addEventListener("change", () => {
      if (input.files[0]) this.send(input.files[0]);
    });
    const zone = h("label", { for: "upload-file", class: "drop-zone", testid: "drop-zone", tabindex: 0 },
      h("span", { class: "drop-icon", "aria-hidden": "true" }, "⬆"),
      h("strong", {}, "Drop an image here"),
      h("span", { class: "muted" }, "or click to choose a file"),
      input);
    zone.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") input.click();
    });
    zone.addEventListener("dragover", (e) => {
      if (!e.dataTransfer.types.includes("Files")) return;
      e.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      zone.classList.remove("over");
      const file = e.dataTransfer.files[0];
      if (!file) return;
      e.preventDefault();
      e.stopPropagation();
      this.send(file);
    });
    mount(this.root, h("section", { class: "upload" },
      h("div", { class: "toolbar" }, h("h2", {}, "Run a pipeline on an image")),
      h("div", { class: "panel upload-panel" },
        h("div", { class: "field" }, h("label", { for: "upload-pipeline" }, "Pipeline"), picker,
          h("small", { class: "hint", id: "upload-target" })),
        zone,
        h("div", { id: "upload-status", class: "upload-status", role: "status", "aria-live": "polite", testid: "upload-status" }))));
    this.describe();
    if (this.pendingFile) this.send(this.pendingFile);
  }

  describe() {
    const p = this.pipelines.get(this.pipeline);
    const hint = this.root.querySelector("#upload-target");
    if (hint) {
      hint.textContent = p
        ? `Goes to ${p.spec.trigger.bucket}/${p.spec.trigger.prefix}…${p.spec.trigger.suffix ? ` (names must end in ${p.spec.trigger.suffix})` : ""}; output in ${p.spec.output.bucket}/${p.name}/`
        : "Save a pipeline in the builder first.";
    }
  }

  status(...children) {
    const box = this.root.querySelector("#upload-status");
    if (box) mount(box, ...children);
  }

  async send(file) {
    this.pendingFile = null;
    if (!this.pipeline) {
      this.status(h("p", { class: "error" }, "Choose a pipeline first."));
      return;
    }
    const suffix = this.pipelines.get(this.pipeline)?.spec.trigger.suffix ?? "";
    this.status(h("p", {}, h("span", { class: "spinner", "aria-hidden": "true" }), ` Uploading ${file.name}…`));
    let object;
    try {
      object = await api.upload(this.pipeline, file);
    } catch (error) {
      this.status(h("p", { class: "error", testid: "upload-error" }, `Upload failed: ${describeError(error)}`));
      return;
    }
    const where = `${object.bucket}/${object.key}`;
    if (suffix && !object.key.endsWith(suffix)) {
      this.status(h("p", { class: "error" }, `Uploaded ${where}, but ${this.pipeline} only runs on names ending in ${suffix}.`));
      return;
    }
    this.status(h("p", {}, h("span", { class: "spinner", "aria-hidden": "true" }), ` Uploaded ${where}; waiting for the run to start…`));
    const run = await this.findRun(object);
    if (this.closed) return;
    if (run) location.hash = `#/runs/${encodeURIComponent(run.id)}`;
    else this.status(h("p", { class: "error" }, `No run started for ${where} within ${FIND_RUN_TIMEOUT_MS / 1000} s. Is the bucket notification set up?`));
  }

  async findRun(object) {
    const deadline = Date.now() + FIND_RUN_TIMEOUT_MS;
    while (Date.now() < deadline && !this.closed) {
      try {
        const page = await api.runs({ pipeline: this.pipeline, source: `${object.bucket}/${object.key}`, limit: 1 });
        if (page.runs.length) return page.runs[0];
      } catch (error) {
        notifyError("Could not look for the run", error);
      }
      await sleep(FIND_RUN_EVERY_MS);
    }
    return null;
  }

  close() {
    this.closed = true;
  }
}
