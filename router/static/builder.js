// The pipeline builder: holds the draft, applies edits, talks to the API, draws the views.

import { api, rememberPipeline } from "./api.js";
import { canvas, draftGraph } from "./canvas.js";
import { catalogue } from "./catalogue.js";
import { debounce, h, mount } from "./dom.js";
import { notify, notifyError } from "./notify.js";
import { pipelineForm } from "./pipeline-form.js";
import { setStatus, showProblems } from "./problems.js";
import { canConnect, draftFromSpec, emptyDraft, newStepId, specFromDraft } from "./spec.js";
import { stepCard } from "./step-card.js";
import { loadVersions, toolbar, versionView } from "./versions.js";

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
        this.saved = await loadVersions(name);
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
    setStatus(this.root, "checking", "checking…");
    try {
      const result = await api.validate(specFromDraft(this.draft), controller.signal);
      this.problems = result.problems;
      this.showProblems();
    } catch (error) {
      if (error.name === "AbortError") return;
      setStatus(this.root, "error", `validation failed: ${error.message}`);
    }
  }

  async save() {
    const spec = specFromDraft(this.draft);
    if (!spec.name) {
      this.problems = [{ field: "name", message: "a pipeline needs a name" }];
      this.showProblems();
      return;
    }
    // The save answers for this very draft: a validation still waiting or in
    // flight would only overwrite "saved as version N" with an older answer.
    this.scheduleValidate.cancel();
    this.validation?.abort();
    const button = this.root.querySelector('[data-testid="save"]');
    button.disabled = true;
    try {
      const stored = await api.save(spec.name, spec);
      this.saved = await loadVersions(stored.name);
      rememberPipeline(stored.name);
      this.problems = [];
      notify(`Saved ${stored.name} version ${stored.version}`, "success");
      history.replaceState(null, "", `#/builder/${encodeURIComponent(stored.name)}`);
      this.render();
      this.showProblems();
      setStatus(this.root, "saved", `saved as version ${stored.version}`);
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
      this.saved = await loadVersions(this.saved.name);
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
        catalogue(this.parts, (name) => this.addStep(name)),
        h("div", { class: "workspace" },
          h("div", { class: "toolbar", id: "builder-toolbar" }),
          h("div", { id: "version-view" }),
          h("div", { id: "builder-body" }))));
    this.renderToolbar();
    this.renderVersionView();
    this.renderWorkspace();
  }

  renderToolbar() {
    mount(this.root.querySelector("#builder-toolbar"), toolbar(this.saved, this.viewing, {
      onView: (version) => this.view(version),
      onRemove: () => this.remove(),
      onSave: () => this.save(),
    }));
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
    mount(box, versionView(v, {
      active: v.version === this.saved?.active_version,
      parts: this.parts,
      onActivate: () => this.activate(v.version),
      onEdit: () => this.editFrom(v),
      onClose: () => this.view(null),
    }));
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
      pipelineForm(this.draft, { saved: Boolean(this.saved), onChange: () => this.changed({ graph: true }) }),
      canvas((part) => this.addStep(part)),
      h("div", { class: "field-errors general", dataset: { field: "steps" }, role: "alert" }),
      h("div", { class: "steps", testid: "steps" }, this.draft.steps.map((s, i) => this.card(s, i))),
      h("div", { class: "field-errors general", dataset: { field: "$" }, role: "alert" }));
    this.renderGraph();
    this.showProblems();
  }

  renderGraph() {
    const holder = this.root.querySelector("#graph-holder");
    if (!holder) return;
    const d = this.draft;
    mount(holder, draftGraph(d, this.parts, {
      pending: this.pending,
      selected: this.selected,
      onNodeClick: (id) => this.select(id),
      onConnect: (side, id) => this.connect(side, id),
      onEdgeClick: (parent, child) => {
        const step = d.steps.find((s) => s.id === child);
        if (step) this.toggleAfter(step, parent);
      },
    }));
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

  card(step, index) {
    return stepCard(step, index, this.draft.steps, {
      part: this.parts.get(step.function),
      selected: this.selected === step.id,
      onRename: (id) => {
        this.renameStep(step, id);
        this.renderWorkspace();
      },
      onRemove: () => this.removeStep(step.id),
      onToggleAfter: (parent) => this.toggleAfter(step, parent),
      onChange: (what) => this.changed(what),
    });
  }

  // -- problems ------------------------------------------------------------

  /** Show this.problems beside their fields (problems.js) and update the status pill. */
  showProblems() {
    showProblems(this.root, this.problems, { touched: this.touched, name: this.draft.name });
  }
}
