// The pipeline builder: parts catalogue, DAG canvas, step cards, versions.

import { api, rememberPipeline } from "./api.js";
import { debounce, formatAgo, h, mount } from "./dom.js";
import { renderGraph } from "./graph.js";
import { notify, notifyError } from "./notify.js";
import { paramsForm } from "./schemaform.js";
import {
  canConnect, descendants, draftFromSpec, emptyDraft, isFused, newStepId, parentPath, specFromDraft,
} from "./spec.js";

const GROUPS = [
  ["pre-processing", "Pre-processing"],
  ["ai", "AI"],
  ["post-processing", "Post-processing"],
];
const PART_MIME = "application/x-kpipe-part";

/** The graph's second line of a step: its part, or its params when the id says the part. */
function sublabel(step) {
  if (step.id !== step.function) return step.function;
  const params = Object.entries(step.params).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(",") : v}`);
  return params.join(" ") || step.function;
}

function triggerLabel(trigger) {
  return `${trigger.bucket || "?"}\n${trigger.prefix}*${trigger.suffix}`;
}

export class Builder {
  /** root: the element to draw into; parts: GET /v1/functions. */
  constructor(root, parts) {
    this.root = root;
    this.parts = new Map(parts.map((p) => [p.name, p]));
    this.draft = emptyDraft();
    this.saved = null; // {name, versions: [...], active_version}
    this.viewing = null; // a stored version shown read-only
    this.pending = null; // the step whose output port was clicked
    this.selected = null;
    this.problems = [];
    this.validation = null; // AbortController of the validation in flight
    this.touched = false;
    this.scheduleValidate = debounce(() => this.validate(), 350);
  }

  /** Show the builder; `name` loads that pipeline's active version, else a new draft. */
  async open(name, version) {
    this.viewing = null;
    this.pending = null;
    this.problems = [];
    this.touched = false;
    if (name) {
      try {
        const stored = await api.pipeline(name);
        this.draft = draftFromSpec(stored.spec);
        await this.loadVersions(name);
        if (version) await this.view(Number(version));
        this.touched = true;
      } catch (error) {
        notifyError(`Could not open ${name}`, error);
        this.draft = emptyDraft();
        this.saved = null;
      }
    } else {
      this.draft = emptyDraft();
      this.saved = null;
    }
    this.render();
    if (this.touched) this.validate();
  }

  async loadVersions(name) {
    const versions = await api.versions(name);
    const active = versions.find((v) => v.active_version != null)?.active_version ?? null;
    this.saved = { name, versions, active_version: active };
  }

  // -- edits ---------------------------------------------------------------

  addStep(fn) {
    const steps = this.draft.steps;
    const parent = this.selected && steps.some((s) => s.id === this.selected)
      ? this.selected
      : steps.at(-1)?.id;
    const id = newStepId(fn, steps);
    steps.push({ id, function: fn, params: {}, after: parent ? [parent] : [], when: "", fuse: false });
    this.selected = id;
    this.changed({ structure: true });
    this.root.querySelector(`[data-testid="step-${id}"]`)?.scrollIntoView({ block: "nearest" });
  }

  removeStep(id) {
    this.draft.steps = this.draft.steps.filter((s) => s.id !== id);
    for (const s of this.draft.steps) s.after = s.after.filter((p) => p !== id);
    if (this.selected === id) this.selected = null;
    this.changed({ structure: true });
  }

  toggleAfter(step, parent) {
    if (step.after.includes(parent)) step.after = step.after.filter((p) => p !== parent);
    else if (canConnect(this.draft.steps, parent, step.id)) step.after = [...step.after, parent];
    else notify(`${step.id} → ${parent} would make a cycle`, "error");
    this.changed({ structure: true });
  }

  renameStep(step, id) {
    for (const s of this.draft.steps) s.after = s.after.map((p) => (p === step.id ? id : p));
    if (this.selected === step.id) this.selected = id;
    step.id = id;
    this.changed({ graph: true });
  }

  /** A port click: first an output port, then the input port of the step that waits for it. */
  connect(side, id) {
    if (side === "out") {
      this.pending = this.pending === id ? null : id;
    } else if (this.pending) {
      const child = this.draft.steps.find((s) => s.id === id);
      if (child && !child.after.includes(this.pending)) this.toggleAfter(child, this.pending);
      this.pending = null;
    }
    this.renderGraph();
  }

  changed({ structure = false, graph = false } = {}) {
    this.touched = true;
    if (structure) this.renderWorkspace();
    else if (graph) this.renderGraph();
    this.scheduleValidate();
  }

  // -- server --------------------------------------------------------------

  async validate() {
    this.validation?.abort();
    const controller = new AbortController();
    this.validation = controller;
    this.setStatus("checking", "checking…");
    try {
      const result = await api.validate(specFromDraft(this.draft), controller.signal);
      this.problems = result.problems;
      this.showProblems();
    } catch (error) {
      if (error.name === "AbortError") return;
      this.setStatus("error", `validation failed: ${error.message}`);
    }
  }

  async save() {
    const spec = specFromDraft(this.draft);
    if (!spec.name) {
      this.problems = [{ field: "name", message: "a pipeline needs a name" }];
      this.showProblems();
      return;
    }
    const button = this.root.querySelector('[data-testid="save"]');
    button.disabled = true;
    try {
      const stored = await api.save(spec.name, spec);
      await this.loadVersions(stored.name);
      rememberPipeline(stored.name);
      this.problems = [];
      notify(`Saved ${stored.name} version ${stored.version}`, "success");
      history.replaceState(null, "", `#/builder/${encodeURIComponent(stored.name)}`);
      this.render();
      this.showProblems();
      this.setStatus("saved", `saved as version ${stored.version}`);
    } catch (error) {
      if (error.problems?.length) {
        this.problems = error.problems;
        this.showProblems();
      }
      notifyError("Could not save", error);
    } finally {
      button.disabled = false;
    }
  }

  async view(version) {
    try {
      this.viewing = version ? await api.version(this.saved.name, version) : null;
    } catch (error) {
      notifyError(`Could not load version ${version}`, error);
      this.viewing = null;
    }
    this.renderVersionView();
  }

  async activate(version) {
    try {
      await api.activate(this.saved.name, version);
      await this.loadVersions(this.saved.name);
      notify(`${this.saved.name}: version ${version} is active`, "success");
      this.renderToolbar();
      this.renderVersionView();
    } catch (error) {
      notifyError("Could not change the active version", error);
    }
  }

  async remove() {
    const name = this.saved?.name;
    if (!name || !confirm(`Delete pipeline ${name} and stop its trigger?`)) return;
    try {
      await api.remove(name);
      notify(`Deleted ${name}`, "success");
      location.hash = "#/builder";
    } catch (error) {
      notifyError("Could not delete", error);
    }
  }

  // -- drawing -------------------------------------------------------------

  render() {
    mount(this.root,
      h("div", { class: "builder" },
        this.catalogue(),
        h("div", { class: "workspace" },
          h("div", { class: "toolbar", id: "builder-toolbar" }),
          h("div", { id: "version-view" }),
          h("div", { id: "builder-body" }))));
    this.renderToolbar();
    this.renderVersionView();
    this.renderWorkspace();
  }

  catalogue() {
    return h("aside", { class: "catalogue", "aria-label": "Parts", testid: "catalogue" },
      h("h2", {}, "Parts"),
      h("p", { class: "muted small" }, "Click a part to add it after the selected step, or drag it onto the canvas."),
      GROUPS.map(([group, title]) => h("section", { class: `part-group group-${group}`, testid: `group-${group}` },
        h("h3", {}, title),
        [...this.parts.values()].filter((p) => p.group === group).map((p) => this.partButton(p)))));
  }

  partButton(part) {
    const button = h("button", {
      type: "button", class: `part group-${part.group}`, draggable: "true", testid: `part-${part.name}`,
      title: part.summary, onclick: () => this.addStep(part.name),
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

  renderToolbar() {
    const bar = this.root.querySelector("#builder-toolbar");
    const saved = this.saved;
    const versions = saved?.versions ?? [];
    mount(bar,
      h("div", { class: "toolbar-title" },
        h("h2", {}, saved ? saved.name : "New pipeline"),
        saved ? h("span", { class: "muted", testid: "current-version" },
          `${versions.length} version${versions.length === 1 ? "" : "s"} · active v${saved.active_version ?? "?"}`) : null),
      saved ? h("label", { class: "inline" }, "Versions ",
        h("select", {
          testid: "version-picker",
          onchange: (e) => this.view(Number(e.target.value) || null),
        },
        h("option", { value: "" }, "view a version…"),
        [...versions].reverse().map((v) => h("option", { value: v.version, selected: this.viewing?.version === v.version },
          `v${v.version}${v.version === saved.active_version ? " (active)" : ""} · ${formatAgo(v.created_at)}`)))) : null,
      h("span", { class: "spacer" }),
      h("span", { class: "validation idle", testid: "validation-status", role: "status", "aria-live": "polite" }, ""),
      saved ? h("button", { type: "button", class: "ghost danger", onclick: () => this.remove(), testid: "delete" }, "Delete") : null,
      h("a", { class: "button ghost", href: "#/builder/new" }, "New"),
      h("button", { type: "button", class: "primary", testid: "save", onclick: () => this.save() }, "Save"));
    if (this.problems.length || this.touched) this.showProblems();
  }

  renderVersionView() {
    const box = this.root.querySelector("#version-view");
    const v = this.viewing;
    if (!box) return;
    if (!v) {
      mount(box);
      return;
    }
    const active = v.version === this.saved?.active_version;
    mount(box, h("section", { class: "panel version-view", testid: "version-view", "aria-label": `version ${v.version}` },
      h("header", {},
        h("h3", {}, `${v.name} · version ${v.version}`),
        active ? h("span", { class: "badge status-succeeded", testid: "active-badge" }, "active") : null,
        h("span", { class: "muted" }, `saved ${formatAgo(v.created_at)} · read-only`),
        h("span", { class: "spacer" }),
        active ? null : h("button", { type: "button", class: "primary", testid: "activate", onclick: () => this.activate(v.version) }, "Make active"),
        h("button", { type: "button", testid: "edit-version", onclick: () => this.editFrom(v) }, "Edit from this version"),
        h("button", { type: "button", class: "ghost", "aria-label": "close", onclick: () => this.view(null) }, "✕")),
      h("div", { class: "canvas readonly" }, renderGraph(this.nodes(draftFromSpec(v.spec).steps, draftFromSpec(v.spec)), {
        source: triggerLabel(v.spec.trigger),
        sink: v.spec.output.bucket, testid: "version-graph",
      })),
      h("p", { class: "muted small" }, v.spec.steps.map((s) => `${s.id}: ${s.function}${Object.keys(s.params).length ? ` ${JSON.stringify(s.params)}` : ""}`).join(" · "))));
  }

  editFrom(version) {
    this.draft = draftFromSpec(version.spec);
    this.viewing = null;
    this.renderVersionView();
    this.changed({ structure: true });
    notify(`Editing a copy of version ${version.version}; Save makes a new version`);
  }

  renderWorkspace() {
    const body = this.root.querySelector("#builder-body");
    if (!body) return;
    mount(body,
      this.metaForm(),
      this.canvas(),
      h("div", { class: "field-errors general", dataset: { field: "steps" }, role: "alert" }),
      h("div", { class: "steps", testid: "steps" }, this.draft.steps.map((s, i) => this.stepCard(s, i))),
      h("div", { class: "field-errors general", dataset: { field: "$" }, role: "alert" }));
    this.renderGraph();
    this.showProblems();
  }

  metaForm() {
    const d = this.draft;
    const text = (path, label, get, set, attrs = {}) => {
      const id = `meta-${path.replace(/\W/g, "-")}`;
      const { hint, ...rest } = attrs;
      const control = h("input", { id, type: "text", value: get(), spellcheck: "false", testid: `meta-${path}`, ...rest });
      control.addEventListener("input", () => {
        set(control.value);
        this.changed({ graph: true });
      });
      return h("div", { class: "field", dataset: { field: path } },
        h("label", { for: id }, label), control,
        hint ? h("small", { class: "hint" }, hint) : null,
        h("div", { class: "field-errors", role: "alert" }));
    };
    return h("section", { class: "panel meta", "aria-label": "pipeline settings" },
      h("div", { class: "meta-row" },
        text("name", "Name", () => d.name, (v) => { d.name = v; }, {
          placeholder: "privacy-blur", readonly: this.saved ? true : null,
          hint: this.saved ? "A saved pipeline keeps its name; New starts another." : "Lowercase letters, digits and dashes.",
        }),
        text("description", "Description", () => d.description, (v) => { d.description = v; }, { placeholder: "what it does" })),
      h("div", { class: "meta-row" },
        h("fieldset", { dataset: { field: "trigger" } },
          h("legend", {}, "Trigger: uploads to"),
          text("trigger.bucket", "Bucket", () => d.trigger.bucket, (v) => { d.trigger.bucket = v; }),
          text("trigger.prefix", "Key prefix", () => d.trigger.prefix, (v) => { d.trigger.prefix = v; }, { placeholder: "any" }),
          text("trigger.suffix", "Key suffix", () => d.trigger.suffix, (v) => { d.trigger.suffix = v; }, { placeholder: "any" }),
          h("div", { class: "field-errors", role: "alert" })),
        h("fieldset", { dataset: { field: "output" } },
          h("legend", {}, "Output"),
          text("output.bucket", "Bucket", () => d.output.bucket, (v) => { d.output.bucket = v; }),
          this.checkbox("fuse", "Fuse chains", "Run each single-parent chain in one invocation; only the last step writes an image.",
            () => d.fuse, (v) => { d.fuse = v; }),
          h("div", { class: "field-errors", role: "alert" }))));
  }

  /** A checkbox field whose change redraws the graph (fusing changes how edges look). */
  checkbox(path, label, hint, get, set) {
    const id = `check-${path.replace(/\W/g, "-")}`;
    const box = h("input", { id, type: "checkbox", checked: get(), testid: `check-${path}` });
    box.addEventListener("change", () => {
      set(box.checked);
      this.changed({ graph: true });
    });
    return h("div", { class: "field field-boolean", dataset: { field: path } },
      box, h("label", { for: id }, label), h("small", { class: "hint" }, hint),
      h("div", { class: "field-errors", role: "alert" }));
  }

  canvas() {
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
      this.addStep(part);
    });
    return zone;
  }

  nodes(steps, draft = this.draft) {
    return steps.map((s) => ({
      ...s, group: this.parts.get(s.function)?.group, sublabel: sublabel(s), fused: isFused(draft, s),
    }));
  }

  renderGraph() {
    const holder = this.root.querySelector("#graph-holder");
    if (!holder) return;
    const d = this.draft;
    if (d.steps.length === 0) {
      mount(holder, h("p", { class: "empty" }, "Drop parts here, or click them in the catalogue."));
      return;
    }
    mount(holder,
      renderGraph(this.nodes(d.steps), {
        source: triggerLabel(d.trigger),
        sink: d.output.bucket || "?",
        pending: this.pending,
        selected: this.selected,
        onNodeClick: (id) => this.select(id),
        onConnect: (side, id) => this.connect(side, id),
        onEdgeClick: (parent, child) => {
          const step = d.steps.find((s) => s.id === child);
          if (step) this.toggleAfter(step, parent);
        },
        testid: "builder-graph",
      }),
      h("p", { class: "muted small graph-help" }, this.pending
        ? `Now click the input port (left dot) of the step that should run after ${this.pending}.`
        : "Connect: click a step's output port (right dot), then another step's input port. Click a line to remove it."));
  }

  select(id) {
    this.selected = id;
    this.renderGraph();
    for (const card of this.root.querySelectorAll(".step-card")) {
      card.classList.toggle("selected", card.dataset.step === id);
    }
    const card = this.root.querySelector(`[data-testid="step-${id}"]`);
    card?.scrollIntoView({ block: "nearest", behavior: "smooth" });
    card?.querySelector("input")?.focus({ preventScroll: true });
  }

  stepCard(step, index) {
    const part = this.parts.get(step.function);
    const path = `steps[${index}]`;
    const later = descendants(this.draft.steps, step.id);
    const candidates = this.draft.steps.filter((s) => s.id !== step.id && !later.has(s.id));
    const idInput = h("input", { type: "text", value: step.id, spellcheck: "false", testid: "step-id", id: `${path}-id`, "aria-label": "step id" });
    idInput.addEventListener("change", () => {
      this.renameStep(step, idInput.value.trim());
      this.renderWorkspace();
    });
    const when = h("input", { type: "text", value: step.when, spellcheck: "false", id: `${path}-when`, testid: "step-when", placeholder: "always (e.g. faces.count > 0)" });
    when.addEventListener("input", () => {
      step.when = when.value;
      this.changed();
    });
    return h("article", {
      class: `step-card group-${part?.group ?? "unknown"}${this.selected === step.id ? " selected" : ""}`,
      testid: `step-${step.id}`, dataset: { field: path, step: step.id },
      "aria-label": `step ${step.id}`,
    },
    h("header", {},
      h("span", { class: "step-fn" }, step.function),
      h("div", { class: "field step-id", dataset: { field: `${path}.id` } },
        h("label", { for: `${path}-id`, class: "sr-only" }, "id"), idInput,
        h("div", { class: "field-errors", role: "alert" })),
      h("button", { type: "button", class: "ghost danger", testid: "remove-step", "aria-label": `remove ${step.id}`, onclick: () => this.removeStep(step.id) }, "Remove")),
    part ? h("p", { class: "muted small" }, part.summary) : h("p", { class: "error" }, `unknown part ${step.function}`),
    h("div", { class: "field", dataset: { field: `${path}.after` } },
      h("span", { class: "label" }, "Runs after"),
      h("div", { class: "chips", role: "group", "aria-label": `${step.id} runs after` },
        candidates.length === 0 ? h("span", { class: "muted small" }, "the upload (first step)") : null,
        candidates.map((c) => h("button", {
          type: "button", class: "chip", "aria-pressed": String(step.after.includes(c.id)),
          testid: `after-${c.id}`, onclick: () => this.toggleAfter(step, c.id),
        }, c.id))),
      h("div", { class: "field-errors", role: "alert" })),
    h("div", { class: "field", dataset: { field: `${path}.when` } },
      h("label", { for: `${path}-when` }, "Only when"), when,
      h("div", { class: "field-errors", role: "alert" })),
    step.after.length === 1
      ? this.checkbox(`${path}.fuse`, `Fuse with ${step.after[0]}`, "Run in the same invocation as the step before (no intermediate image).",
        () => step.fuse, (v) => { step.fuse = v; })
      : null,
    h("details", { class: "params-box", open: true },
      h("summary", {}, "Params"),
      h("div", { dataset: { field: `${path}.params` } },
        paramsForm(part?.params, step.params, `${path}.params`, {
          onChange: (name, value) => {
            if (value === undefined) delete step.params[name];
            else step.params[name] = value;
            this.changed({ graph: true });
          },
        }),
        h("div", { class: "field-errors", role: "alert" }))),
    h("div", { class: "field-errors", role: "alert" }));
  }

  // -- problems ------------------------------------------------------------

  setStatus(kind, text) {
    const pill = this.root.querySelector('[data-testid="validation-status"]');
    if (!pill) return;
    pill.className = `validation ${kind}`;
    pill.textContent = text;
  }

  /** Put each problem next to the field its path names (or the nearest enclosing one). */
  showProblems() {
    for (const box of this.root.querySelectorAll("#builder-body .field-errors")) box.replaceChildren();
    for (const el of this.root.querySelectorAll("#builder-body .invalid")) el.classList.remove("invalid");
    for (const el of this.root.querySelectorAll("#builder-body [aria-invalid]")) el.removeAttribute("aria-invalid");
    const body = this.root.querySelector("#builder-body");
    if (!body) return;
    for (const problem of this.problems) {
      let path = problem.field || "$";
      let target = null;
      while (!target) {
        target = body.querySelector(`[data-field="${CSS.escape(path)}"]`);
        if (target || path === "$") break;
        path = parentPath(path);
      }
      target ??= body.querySelector('[data-field="$"]');
      const where = problem.field && problem.field !== path ? `${problem.field}: ` : "";
      const message = problem.field === "name" && !this.draft.name.trim() ? "a pipeline needs a name" : problem.message;
      target.classList.add("invalid");
      target.querySelector(":scope > input, :scope > select")?.setAttribute("aria-invalid", "true");
      const box = target.querySelector(":scope > .field-errors") ?? target;
      box.append(h("p", { class: "error", testid: "field-error" }, where + message));
    }
    if (!this.touched && !this.problems.length) this.setStatus("idle", "");
    else if (this.problems.length) {
      const n = this.problems.length;
      this.setStatus("invalid", `${n} problem${n === 1 ? "" : "s"}`);
    } else this.setStatus("valid", "✓ valid");
  }
}
