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

async function request(method, path, { json, form, signal } = {}) {
  const headers = { Accept: "application/json" };
  const token = getToken();
  if (token && method !== "GET") headers.Authorization = `Bearer ${token}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  const response = await fetch(path, { method, headers, body, signal });
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { error: { code: "bad_response", message: text.slice(0, 200) } };
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
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
  upload: (name, file) => {
    const form = new FormData();
    form.append("file", file, file.name);
    return request("POST", `/v1/pipelines/${enc(name)}/uploads`, { form });
  },
};

/** The URL that serves an object's bytes (for <img src>). */
export function objectUrl(ref) {
  const key = ref.key.split("/").map(enc).join("/");
  return `/v1/objects/${enc(ref.bucket)}/${key}`;
}
