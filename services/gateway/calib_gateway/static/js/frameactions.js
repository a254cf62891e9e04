// What an administrator does to individual frames (Individual Frames tab, held frames, a
// master's source frames): preview, download, delete, and release a held frame.

import { CALIBRATION } from "./api.js";
import { describeConfiguration, h } from "./dom.js";
import { authImage, confirmDialog, errorText, releaseImages, saveBlob } from "./ui.js";

function framePath(frame, tail = "") {
  return `${CALIBRATION}/frames/${encodeURIComponent(frame.id)}${tail}`;
}

/** A dialog with the frame's stretched preview (made by the server on first request). */
export function openFramePreview(api, frame) {
  const title = `${frame.frame_type} ${frame.id} · ${describeConfiguration(frame)}`;
  const closeButton = h("button", { class: "secondary close", "aria-label": "Close" }, "Close");
  const dialog = h("dialog", { class: "detail frame-preview", "aria-labelledby": "frame-preview-title" },
    h("header", {}, h("h2", { id: "frame-preview-title" }, title), closeButton),
    h("figure", { class: "preview" },
      authImage(api, framePath(frame, "/preview.png"), { alt: `Preview of ${title}`, className: "full" }),
      h("figcaption", {}, frame.held_reason ? `Held: ${frame.held_reason}` : "Preview (asinh stretch)")));
  closeButton.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    releaseImages(dialog);
    dialog.remove();
  });
  document.body.append(dialog);
  dialog.showModal();
  closeButton.focus();
}

export async function downloadFrame(api, frame) {
  saveBlob(await api.blob(framePath(frame, "/download")), `${frame.frame_type}-${frame.id}.fits`);
}

/** Delete frames after asking; resolves to the number deleted (0 when not confirmed). */
export async function deleteFrames(api, frames) {
  const one = frames.length === 1;
  const confirmed = await confirmDialog({
    title: one ? "Delete frame?" : `Delete ${frames.length} frames?`,
    message: `${one ? `The ${frames[0].frame_type} frame ${frames[0].id} and its file are` :
      `These ${frames.length} frames and their files are`} removed permanently. Masters stacked from ` +
      "them stay as they are. This cannot be undone.",
    confirmLabel: one ? "Delete frame" : "Delete frames",
    danger: true,
  });
  if (!confirmed) return 0;
  for (const frame of frames) await api.request("DELETE", framePath(frame));
  return frames.length;
}

/** Release held frames: the server stacks them again as soon as a group has enough. */
export async function releaseFrames(api, frames) {
  return api.request("POST", `${CALIBRATION}/frames/release`, { json: { frame_ids: frames.map((f) => f.id) } });
}

/**
 * The action buttons of one frame. `status` shows results; `changed()` is called after a
 * delete or release so the view reloads.
 */
export function frameActions(ctx, frame, { observatory, status, changed }) {
  const canManage = ctx.identity.canManage(observatory);
  async function run(busy, action) {
    status.show("busy", busy);
    try {
      const text = await action();
      if (text === null) {
        status.clear();
        return;
      }
      await changed();
      status.show("ok", text);
    } catch (error) {
      status.show("error", errorText(error));
    }
  }
  return h("div", { class: "row-actions" },
    h("button", { class: "secondary", onclick: () => openFramePreview(ctx.api, frame),
      "aria-label": `Preview frame ${frame.id}` }, "Preview"),
    h("button", { class: "secondary", "aria-label": `Download frame ${frame.id}`,
      onclick: async () => {
        try {
          await downloadFrame(ctx.api, frame);
        } catch (error) {
          status.show("error", errorText(error));
        }
      } }, "Download"),
    canManage && frame.held && h("button", { class: "secondary", "aria-label": `Release frame ${frame.id}`,
      onclick: () => run("Releasing…", async () => {
        await releaseFrames(ctx.api, [frame]);
        return `Frame ${frame.id} released.`;
      }) }, "Release"),
    canManage && h("button", { class: "danger", "aria-label": `Delete frame ${frame.id}`,
      onclick: () => run("Deleting…", async () =>
        ((await deleteFrames(ctx.api, [frame])) ? `Frame ${frame.id} deleted.` : null)) }, "Delete"));
}
