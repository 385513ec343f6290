// The kpipe REST API, as small async functions. Every error becomes an ApiError.

const TOKEN_KEY = "kpipe.token";

export class ApiError extends Error {
  /** An error answer: `{"error": {"code", "message", "field"}, "problems"?: [...]}`. */
  constructor(status, body) {
    const error = body?.error ?? {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code ?? "http_error";
    this.field = error.field ?? null;
    this.problems = body?.problems ?? [];
  }
}

export function getToken() {
  return localStorage.getItem(TOKEN_KEY) ?? "";
}

export function setToken(token) {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

/** The error an answer that is not 2xx carries. */
async function errorOf(response) {
  const text = await response.text();
  try {
    return new ApiError(response.status, text ? JSON.parse(text) : null);
  } catch {
    return new ApiError(response.status, { error: { code: "bad_response", message: text.slice(0, 200) } });
  }
}

/** fetch() with the API token (every call needs it when the server sets one). */
async function send(method, path, { headers = {}, body, signal } = {}) {
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { method, headers, body, signal });
  if (!response.ok) throw await errorOf(response);
  return response;
}

async function request(method, path, { json, form, signal } = {}) {
  const headers = { Accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  const response = await send(method, path, { headers, body, signal });
  if (response.status === 204) return null;
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return { error: { code: "bad_response", message: text.slice(0, 200) } };
  }
}

const PIPELINE_KEY = "kpipe.pipeline";

/** Remember the pipeline last opened or saved (the upload view picks it). */
export function rememberPipeline(name) {
  sessionStorage.setItem(PIPELINE_KEY, name);
}

export function lastPipeline() {
  return sessionStorage.getItem(PIPELINE_KEY) ?? "";
}

const enc = encodeURIComponent;

export const api = {
  functions: () => request("GET", "/v1/functions"),
  pipelines: () => request("GET", "/v1/pipelines"),
  pipeline: (name) => request("GET", `/v1/pipelines/${enc(name)}`),
  versions: (name) => request("GET", `/v1/pipelines/${enc(name)}/versions`),
  version: (name, v) => request("GET", `/v1/pipelines/${enc(name)}/versions/${v}`),
  save: (name, spec) => request("PUT", `/v1/pipelines/${enc(name)}`, { json: spec }),
  remove: (name) => request("DELETE", `/v1/pipelines/${enc(name)}`),
  activate: (name, version) =>
    request("POST", `/v1/pipelines/${enc(name)}/active`, { json: { version } }),
  validate: (spec, signal) => request("POST", "/v1/pipelines/validate", { json: spec, signal }),
  runs: (query = {}) => {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== "" && v != null) params.set(k, v);
    return request("GET", `/v1/runs?${params}`);
  },
  run: (id) => request("GET", `/v1/runs/${enc(id)}`),
  retry: (id) => request("POST", `/v1/runs/${enc(id)}/retry`),
  redrive: (filter) => request("POST", "/v1/runs/redrive", { json: filter }),
  backfill: (id) => request("GET", `/v1/backfills/${enc(id)}`),
  upload: (name, file) => {
    const form = new FormData();
    form.append("file", file, file.name);
    return request("POST", `/v1/pipelines/${enc(name)}/uploads`, { form });
  },
};

/** The URL that serves an object's bytes (with the token in a header: see fetchObject). */
export function objectUrl(ref) {
  const key = ref.key.split("/").map(enc).join("/");
  return `/v1/objects/${enc(ref.bucket)}/${key}`;
}

/**
 * An object's bytes as a Blob. An <img src> cannot send the token, so the
 * page fetches images with it and shows them from blob: URLs (no token in
 * any URL, so none in logs or history).
 */
export async function fetchObject(ref, signal) {
  const response = await send("GET", objectUrl(ref), { headers: { Accept: "image/*,*/*" }, signal });
  return response.blob();
}
