// The pipeline draft the builder edits, and its conversions to and from the API's spec.

/** An empty draft. */
export function emptyDraft() {
  return {
    name: "",
    description: "",
    trigger: { bucket: "uploads", prefix: "", suffix: ".jpg" },
    output: { bucket: "processed" },
    steps: [],
    fuse: false,
  };
}

/** A draft from a stored spec (deep-copied, `when` as one "a; b" string). */
export function draftFromSpec(spec) {
  return {
    name: spec.name ?? "",
    description: spec.description ?? "",
    trigger: { bucket: "", prefix: "", suffix: "", ...spec.trigger },
    output: { bucket: "", ...spec.output },
    steps: (spec.steps ?? []).map((s) => ({
      id: s.id,
      function: s.function,
      params: structuredClone(s.params ?? {}),
      after: [...(s.after ?? [])],
      when: (Array.isArray(s.when) ? s.when : s.when ? [s.when] : []).join("; "),
      fuse: Boolean(s.fuse),
    })),
    fuse: Boolean(spec.fuse),
  };
}

/** The spec the API takes (PUT, validate). */
export function specFromDraft(draft) {
  return {
    name: draft.name.trim(),
    description: draft.description,
    trigger: { ...draft.trigger },
    output: { ...draft.output },
    steps: draft.steps.map((s) => {
      const when = s.when.split(";").map((c) => c.trim()).filter(Boolean);
      return {
        id: s.id, function: s.function, params: s.params, after: s.after,
        ...(when.length ? { when } : {}), ...(s.fuse ? { fuse: true } : {}),
      };
    }),
    fuse: draft.fuse,
  };
}

/** A step id for a new step of `fn`, unique in `steps` and valid (^[a-z][a-z0-9_-]*$). */
export function newStepId(fn, steps) {
  const base = fn.toLowerCase().replace(/[^a-z0-9_-]/g, "_").replace(/^[^a-z]+/, "") || "step";
  const taken = new Set(steps.map((s) => s.id));
  if (!taken.has(base)) return base;
  for (let n = 2; ; n += 1) if (!taken.has(`${base}_${n}`)) return `${base}_${n}`;
}

/** Every step that (transitively) waits for `id`. */
export function descendants(steps, id) {
  const found = new Set();
  const frontier = [id];
  while (frontier.length) {
    const current = frontier.pop();
    for (const s of steps) {
      if (s.after.includes(current) && !found.has(s.id)) {
        found.add(s.id);
        frontier.push(s.id);
      }
    }
  }
  return found;
}

/** Whether `child` may wait for `parent` without making a cycle. */
export function canConnect(steps, parent, child) {
  return parent !== child && !descendants(steps, child).has(parent);
}

/** `steps[1].params.max_side` -> `steps[1].params`; `steps[1]` -> `steps`; `name` -> `$`. */
export function parentPath(path) {
  const cut = Math.max(path.lastIndexOf("."), path.lastIndexOf("["));
  return cut > 0 ? path.slice(0, cut) : "$";
}

/**
 * Whether `step` runs in one invocation with the step it comes after (as the router
 * groups them): fuse asked for, one parent that has no other dependent, no conditions.
 */
export function isFused(draft, step) {
  if (!(draft.fuse || step.fuse) || step.after.length !== 1 || step.when.trim()) return false;
  const parent = draft.steps.find((s) => s.id === step.after[0]);
  if (!parent || parent.when.trim()) return false;
  return draft.steps.filter((s) => s.after.includes(parent.id)).length === 1;
}
