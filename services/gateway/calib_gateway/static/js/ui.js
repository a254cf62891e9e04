// Small shared widgets: confirmation dialog, status messages, progress bars, images.

import { h, replace } from "./dom.js";

/** Ask before something that cannot be undone; resolves true when confirmed. */
export function confirmDialog({ title, message, confirmLabel = "Confirm", danger = false }) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "confirm", "aria-labelledby": "confirm-title" },
      h("h2", { id: "confirm-title" }, title),
      h("p", {}, message),
      h("form", { method: "dialog", class: "actions" },
        h("button", { value: "cancel", class: "secondary" }, "Cancel"),
        h("button", { value: "confirm", class: danger ? "danger" : "primary" }, confirmLabel)));
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "confirm");
    });
    document.body.append(dialog);
    dialog.showModal();
    dialog.querySelector("button.secondary").focus();
  });
}

/** A live region for the result of an action: ok, error or busy. */
export function statusLine() {
  const element = h("p", { class: "status", role: "status", "aria-live": "polite" });
  return {
    element,
    show(kind, text) {
      element.className = `status ${kind}`;
      replace(element, text);
    },
    clear() {
      element.className = "status";
      replace(element);
    },
  };
}

/** Show what went wrong, with the server's message when there is one. */
export function errorText(error) {
  if (error && error.status === 403) return `Not allowed: ${error.detail}`;
  return error && error.message ? error.message : String(error);
}

/** A labelled progress bar with its count or percentage beside it. */
export function progressBar({ value, max = 1, label, text, dataset }) {
  return h("div", { class: "progress" },
    h("progress", { value: Math.min(value, max), max, "aria-label": label, dataset }),
    h("span", { class: "progress-text" }, text));
}

/**
 * An <img> filled from an authenticated URL (images need the bearer header, so a plain
 * src cannot load them): fetched as a blob, shown through an object URL.
 */
export function authImage(api, path, { alt, className }) {
  const image = h("img", { alt, class: className, decoding: "async" });
  api.blob(path).then(
    (blob) => {
      const url = URL.createObjectURL(blob);
      image.addEventListener("load", () => image.classList.add("loaded"), { once: true });
      image.src = url;
      image.dataset.objectUrl = url;
    },
    () => {
      image.classList.add("missing");
      image.alt = `${alt} (not available)`;
    });
  return image;
}

/** Free the object URLs of images under `element` before it is replaced. */
export function releaseImages(element) {
  for (const image of element.querySelectorAll("img[data-object-url]")) {
    URL.revokeObjectURL(image.dataset.objectUrl);
  }
}

/** Save a blob under a file name through a temporary link. */
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function statusBadge(status) {
  return h("span", { class: `badge badge-${status || "none"}` }, status || "—");
}
