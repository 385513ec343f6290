// Short messages for the user, in a live region.

import { h } from "./dom.js";

/** Show a message for a few seconds; kind is "info", "success" or "error". */
export function notify(message, kind = "info") {
  const region = document.getElementById("toasts");
  const toast = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status", testid: "toast" }, message);
  region.append(toast);
  setTimeout(() => toast.remove(), kind === "error" ? 8000 : 4000);
}

/**
 * The message of a failed API call. A missing, wrong (401) or malformed (400
 * `malformed_authorization`) API token also says where to set one, and opens
 * the settings there.
 */
export function describeError(error) {
  if (error.status !== 401 && error.code !== "malformed_authorization") return error.message;
  const settings = document.getElementById("settings");
  if (settings) {
    settings.open = true;
    document.getElementById("token")?.focus();
  }
  return `${error.message}; set the API token in ⚙ Settings`;
}

/** Report a failed API call. */
export function notifyError(prefix, error) {
  notify(`${prefix}: ${describeError(error)}`, "error");
}
