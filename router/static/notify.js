// Short messages for the user, in a live region.

import { h } from "./dom.js";

/** Show a message for a few seconds; kind is "info", "success" or "error". */
export function notify(message, kind = "info") {
  const region = document.getElementById("toasts");
  const toast = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status", testid: "toast" }, message);
  region.append(toast);
  setTimeout(() => toast.remove(), kind === "error" ? 8000 : 4000);
}

/** Report a failed API call. */
export function notifyError(prefix, error) {
  notify(`${prefix}: ${error.message}`, "error");
}
