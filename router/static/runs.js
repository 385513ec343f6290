// Runs: the live list and one run's view (graph, timings, images, retry).

import { api, fetchObject } from "./api.js";
import { formatAgo, formatDuration, h, mount, statusBadge } from "./dom.js";
import { renderGraph } from "./graph.js";
import { describeError, notify, notifyError } from "./notify.js";
import { draftFromSpec, isFused } from "./spec.js";

const LIST_POLL_MS = 1500;
const RUN_POLL_MS = 1000;
const RUN_STATUSES = ["pending", "running", "succeeded", "failed"];
const FINISHED = new Set(["succeeded", "failed"]);

/** Calls `tick` now and every `ms` until stopped; one call at a time. */
class Poller {
  constructor(tick, ms) {
    this.tick = tick;
    this.ms = ms;
    this.timer = null;
    this.stopped = false;
  }

  async start() {
    if (this.stopped) return;
    try {
      await this.tick();
    } finally {
      if (!this.stopped) this.timer = setTimeout(() => this.start(), this.ms);
    }
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}

export class RunsList {
  constructor(root, { pipeline = "", status = "" } = {}) {
    this.root = root;
    this.filters = { pipeline, status };
    this.poller = new Poller(() => this.refresh(), LIST_POLL_MS);
    this.redrives = [];
  }

  async open() {
    let names = [];
    try {
      names = (await api.pipelines()).map((p) => p.name);
    } catch (error) {
      notifyError("Could not list pipelines", error);
    }
    const select = (key, label, options) => h("label", { class: "inline" }, label,
      h("select", {
        testid: `filter-${key}`,
        onchange: (e) => {
          this.filters[key] = e.target.value;
          this.refresh();
        },
      },
      h("option", { value: "" }, "all"),
      options.map((o) => h("option", { value: o, selected: this.filters[key] === o }, o))));
    mount(this.root, h("section", { class: "runs" },
      h("div", { class: "toolbar" },
        h("h2", {}, "Runs"),
        h("span", { class: "live", title: `refreshes every ${LIST_POLL_MS / 1000} s` }, "live"),
        h("span", { class: "spacer" }),
        select("pipeline", "Pipeline ", names),
        select("status", "Status ", RUN_STATUSES)),
      h("div", { class: "table-wrap" },
        h("table", { class: "runs-table", testid: "runs-table" },
          h("thead", {}, h("tr", {},
            ["Status", "Pipeline", "Source", "Started", "Duration", "Steps"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", { id: "runs-body" }))),
      h("p", { class: "muted small", id: "runs-total", testid: "runs-total" }),
      h("div", { id: "redrive", testid: "redrive-panel" })));
    this.poller.start();
  }

  /** With one pipeline's failed runs listed: count them, and redrive them all at once. */
  async showRedrive(failed) {
    const panel = this.root.querySelector("#redrive");
    if (!panel) return;
    const { pipeline, status } = this.filters;
    const jobs = this.redrives.map((job) => h("li", { testid: "redrive-job", dataset: { status: job.status } },
      `Redrive ${job.id} (v${job.version}): ${job.started} of ${job.total} retried, ${job.succeeded} succeeded, ${job.failed} failed — ${job.status}`));
    const offer = pipeline && status === "failed" && failed > 0
      ? h("button", { type: "button", testid: "redrive", onclick: (e) => this.redrive(e.target) },
        `Redrive ${failed} failed run${failed === 1 ? "" : "s"}`)
      : null;
    mount(panel, offer || jobs.length
      ? h("section", { class: "panel" }, h("h3", {}, "Redrive"),
        h("p", { class: "muted small" }, "Retries each failed run from its failed step, a few at a time."),
        offer, jobs.length ? h("ul", {}, jobs) : null)
      : null);
  }

  async redrive(button) {
    button.disabled = true;
    try {
      const answer = await api.redrive({ pipeline: this.filters.pipeline });
      this.redrives = answer.jobs;
      notify(`Redriving ${answer.taken} failed run${answer.taken === 1 ? "" : "s"}`);
    } catch (error) {
      notifyError("Could not redrive", error);
      button.disabled = false;
    }
  }

  async refresh() {
    const body = this.root.querySelector("#runs-body");
    if (!body) return;
    try {
      const page = await api.runs({ ...this.filters, limit: 100 });
      mount(body, page.runs.length
        ? page.runs.map((run) => this.row(run))
        : h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No runs yet. Upload an image to start one.")));
      this.root.querySelector("#runs-total").textContent = `${page.runs.length} of ${page.total} runs`;
      this.redrives = await Promise.all(this.redrives.map((job) => api.backfill(job.id)));
      await this.showRedrive(this.filters.status === "failed" ? page.total : 0);
    } catch (error) {
      mount(body, h("tr", {}, h("td", { colspan: 6, class: "error" }, error.message)));
    }
  }

  row(run) {
    const done = run.steps.filter((s) => s.status === "succeeded" || s.status === "skipped").length;
    const href = `#/runs/${encodeURIComponent(run.id)}`;
    const tr = h("tr", { testid: "run-row", dataset: { run: run.id, status: run.status }, tabindex: 0 },
      h("td", {}, statusBadge(run.status)),
      h("td", {}, h("a", { href }, run.pipeline), h("span", { class: "muted" }, ` v${run.version}`)),
      h("td", { class: "mono" }, `${run.source.bucket}/${run.source.key}`),
      h("td", { title: run.created_at }, formatAgo(run.created_at)),
      h("td", {}, formatDuration(run.duration_ms)),
      h("td", {}, `${done}/${run.steps.length}`));
    tr.addEventListener("click", () => { location.hash = href; });
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter") location.hash = href; });
    return tr;
  }

  close() {
    this.poller.stop();
  }
}

// -- one run -----------------------------------------------------------------

/** The refs of the image a step saw: its parents' outputs, or the run's source. */
function inputsOf(run, step, after) {
  const parents = after.get(step.id) ?? [];
  if (parents.length === 0) return [run.source];
  const byId = new Map(run.steps.map((s) => [s.id, s]));
  return parents.flatMap((p) => byId.get(p)?.outputs ?? []);
}

function sameRef(a, b) {
  return a.bucket === b.bucket && a.key === b.key;
}

/**
 * The blob: URLs of the images a view shows. Images are fetched with the API
 * token (an <img src> could not send it) and shown from blob: URLs, which are
 * revoked, and unfinished fetches aborted, when the view redraws or closes.
 */
class BlobUrls {
  constructor() {
    this.urls = [];
    this.aborter = new AbortController();
  }

  /** Fetch `ref`, then call `show(url)`; `failed(error)` if it cannot be fetched. */
  load(ref, show, failed) {
    const { signal } = this.aborter;
    fetchObject(ref, signal).then((blob) => {
      if (signal.aborted) return;
      const url = URL.createObjectURL(blob);
      this.urls.push(url);
      show(url);
    }, (error) => {
      if (!signal.aborted) failed(error);
    });
  }

  revokeAll() {
    this.aborter.abort();
    this.aborter = new AbortController();
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.urls = [];
  }
}

/** An image with the detections drawn over it, scaled from the detector's picture size. */
function figure(blobs, { ref, title, detail, testid, detections = null, size = null }) {
  const img = h("img", { alt: `${title}: ${ref.key}`, loading: "lazy", testid: `${testid}-img` });
  const frame = h("div", { class: "frame" }, img);
  const link = h("a", { target: "_blank", rel: "noopener", class: "mono small", testid: `${testid}-link` }, `${ref.bucket}/${ref.key}`);
  const broken = () => {
    if (frame.classList.contains("broken")) return;
    frame.classList.add("broken");
    frame.append(h("span", { class: "muted small" }, "cannot display this object"));
  };
  img.addEventListener("error", broken, { once: true });
  blobs.load(ref, (url) => {
    img.src = url;
    link.href = url;
  }, broken);
  if (detections) {
    const drawBoxes = () => {
      const width = size?.width ?? img.naturalWidth;
      const height = size?.height ?? img.naturalHeight;
      frame.querySelector("svg")?.remove();
      const overlay = h("svg", {
        class: "overlay", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", testid: `${testid}-overlay`,
      });
      const stroke = Math.max(2, Math.round(Math.max(width, height) / 200));
      for (const d of detections) {
        const [x1, y1, x2, y2] = d.box;
        overlay.append(h("g", { class: "det", testid: "detection" },
          h("rect", { x: x1, y: y1, width: x2 - x1, height: y2 - y1, "stroke-width": stroke }),
          h("text", { x: x1 + stroke, y: Math.max(y1 - stroke * 2, stroke * 6), "font-size": stroke * 7 },
            `${d.label} ${Math.round((d.score ?? 0) * 100)}%`)));
      }
      frame.append(overlay);
    };
    if (size) drawBoxes();
    else img.addEventListener("load", drawBoxes, { once: true });
  }
  return h("figure", { class: "image-card", testid },
    frame,
    h("figcaption", {}, h("strong", {}, title), detail ? h("span", { class: "muted" }, detail) : null, link));
}

export class RunView {
  constructor(root, id) {
    this.root = root;
    this.id = id;
    this.spec = null;
    this.signature = "";
    this.poller = new Poller(() => this.refresh(), RUN_POLL_MS);
    this.blobs = new BlobUrls();
  }

  async open() {
    mount(this.root, h("section", { class: "run", testid: "run-view" }, h("p", { class: "muted" }, "Loading run…")));
    this.poller.start();
  }

  async refresh() {
    let run;
    try {
      run = await api.run(this.id);
    } catch (error) {
      mount(this.root, h("section", { class: "run" }, h("p", { class: "error" }, `Run ${this.id}: ${describeError(error)}`)));
      this.poller.stop();
      return;
    }
    if (!this.spec) {
      try {
        this.spec = (await api.version(run.pipeline, run.version)).spec;
      } catch {
        this.spec = { steps: run.steps.map((s) => ({ id: s.id, after: [] })) }; // pipeline deleted
      }
    }
    // Redraw only when something changed, so images do not flicker.
    const signature = JSON.stringify([run.status, run.updated_at, run.steps.map((s) => [s.status, s.attempt])]);
    if (signature !== this.signature) {
      this.signature = signature;
      this.draw(run);
    }
    if (FINISHED.has(run.status)) this.poller.stop();
  }

  draw(run) {
    this.blobs.revokeAll(); // the images drawn before are replaced
    const after = new Map(this.spec.steps.map((s) => [s.id, s.after ?? []]));
    const draft = draftFromSpec(this.spec);
    const fused = new Set(draft.steps.filter((s) => isFused(draft, s)).map((s) => s.id));
    mount(this.root, h("section", { class: "run", testid: "run-view", dataset: { status: run.status } },
      this.header(run),
      run.error ? h("div", { class: "panel error-box", testid: "run-error", role: "alert" },
        h("strong", {}, `Step ${run.error.step ?? "?"} failed`), ` (${run.error.code}): ${run.error.message}`) : null,
      h("div", { class: "run-grid" },
        h("section", { class: "panel" }, h("h3", {}, "Steps"),
          h("div", { class: "canvas readonly" }, renderGraph(
            run.steps.map((s) => ({ id: s.id, function: s.function, after: after.get(s.id) ?? [], status: s.status, fused: fused.has(s.id),
              sublabel: `${s.function} · ${formatDuration(s.duration_ms)}` })),
            { source: `${run.source.bucket}\n${run.source.key.split("/").pop()}`, sink: run.outputs[0]?.bucket ?? this.spec.output?.bucket ?? "output", testid: "run-graph" }))),
        this.timings(run)),
      this.images(run, after)));
  }

  header(run) {
    return h("header", { class: "run-header" },
      h("div", {},
        h("h2", {}, h("a", { href: `#/builder/${encodeURIComponent(run.pipeline)}` }, run.pipeline),
          h("span", { class: "muted" }, ` v${run.version}`), " ", statusBadge(run.status, "run-status")),
        h("p", { class: "muted small mono" }, `run ${run.id} · ${run.source.bucket}/${run.source.key} · started ${formatAgo(run.created_at)} · ${formatDuration(run.duration_ms)}`)),
      h("span", { class: "spacer" }),
      run.status === "failed"
        ? h("button", { type: "button", class: "primary", testid: "retry", onclick: (e) => this.retry(e.currentTarget) }, "Retry from failed step")
        : null,
      h("a", { class: "button ghost", href: "#/runs" }, "All runs"));
  }

  async retry(button) {
    button.disabled = true;
    try {
      await api.retry(this.id);
      notify("Retrying from the failed step", "success");
      this.signature = "";
      this.poller = new Poller(() => this.refresh(), RUN_POLL_MS);
      this.poller.start();
    } catch (error) {
      notifyError("Could not retry", error);
      button.disabled = false;
    }
  }

  timings(run) {
    const start = Date.parse(run.created_at);
    const ends = run.steps.map((s) => (s.finished_at ? Date.parse(s.finished_at) : null)).filter(Boolean);
    const span = Math.max(1, ...ends.map((t) => t - start), run.duration_ms ?? 0);
    return h("section", { class: "panel" }, h("h3", {}, "Timings"),
      h("table", { class: "timings", testid: "timings" },
        h("thead", {}, h("tr", {}, ["Step", "Status", "Try", "Time", "CPU", "Triton", "From upload to finish"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, run.steps.map((s) => {
          const from = s.requested_at ? Date.parse(s.requested_at) - start : 0;
          const width = s.duration_ms ?? 0;
          return h("tr", { testid: `timing-${s.id}` },
            h("th", { scope: "row" }, s.id, s.id === s.function ? null : h("span", { class: "muted small" }, ` ${s.function}`)),
            h("td", {}, statusBadge(s.status, `step-status-${s.id}`)),
            h("td", { class: "num", testid: `attempt-${s.id}` }, s.attempt || "—"),
            h("td", { class: "num" }, formatDuration(s.duration_ms)),
            h("td", { class: "num", testid: `cpu-${s.id}` }, formatDuration(s.cpu_ms)),
            h("td", { class: "num", testid: `inference-${s.id}` }, formatDuration(s.inference_ms)),
            h("td", { class: "bar-cell" }, h("div", { class: "bar-track" },
              h("div", { class: `bar status-${s.status}`, style: `left:${(100 * from) / span}%;width:${Math.max(0.5, (100 * width) / span)}%` }))));
        }))),
      h("p", { class: "muted small", testid: "run-cost" }, `Bars share one time axis: ${formatDuration(span)} from the upload to the last step. The run used ${formatDuration(run.cpu_ms)} of CPU in its parts and waited ${formatDuration(run.inference_ms)} for Triton, as the parts measured.`));
  }

  images(run, after) {
    const cards = [figure(this.blobs, { ref: run.source, title: "Source", testid: "source-image" })];
    let last = run.source;
    for (const step of run.steps) {
      const detections = step.metadata?.detections;
      if (Array.isArray(detections)) {
        const ref = inputsOf(run, step, after)[0];
        if (ref) {
          cards.push(figure(this.blobs, {
            ref, title: step.id, detail: `${step.function}: ${detections.length} found`,
            testid: `detections-${step.id}`, detections, size: step.metadata.image,
          }));
        }
        continue;
      }
      for (const ref of step.outputs) {
        if (run.outputs.some((o) => sameRef(o, ref)) || sameRef(ref, last)) continue;
        cards.push(figure(this.blobs, { ref, title: step.id, detail: step.function, testid: `step-image-${step.id}` }));
        last = ref;
      }
    }
    run.outputs.forEach((ref, i) => {
      cards.push(figure(this.blobs, { ref, title: "Output", detail: run.outputs.length > 1 ? `${i + 1} of ${run.outputs.length}` : null, testid: i === 0 ? "output-image" : `output-image-${i}` }));
    });
    const lineage = run.lineage?.length ? h("details", { class: "lineage" },
      h("summary", {}, "Lineage"),
      h("ol", {}, h("li", { class: "mono small" }, `source: ${run.source.bucket}/${run.source.key}`),
        run.lineage.map((l) => h("li", { class: "mono small" },
          `${l.step} (${l.function}): ${l.objects.map((o) => `${o.bucket}/${o.key}`).join(", ") || "—"}`)))) : null;
    return h("section", { class: "panel" },
      h("h3", {}, "Images"),
      run.status !== "succeeded" && run.outputs.length === 0
        ? h("p", { class: "muted small" }, FINISHED.has(run.status) ? "No output." : "The output appears when the run finishes.")
        : null,
      h("div", { class: "gallery", testid: "gallery" }, cards),
      lineage);
  }

  close() {
    this.poller.stop();
    this.blobs.revokeAll();
  }
}
