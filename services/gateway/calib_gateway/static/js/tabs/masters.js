// Masters: filter, page through, preview, download, delete, expand to source frames.

import { CALIBRATION } from "../api.js";
import { dateTime, describeConfiguration, formatBytes, formatNumber, formatTemperature, h, replace } from "../dom.js";
import { frameActions } from "../frameactions.js";
import { authImage, confirmDialog, errorText, releaseImages, saveBlob, statusBadge, statusLine } from "../ui.js";

const PAGE_SIZE = 50;

function selectField(id, label, name, options) {
  return h("div", { class: "field" },
    h("label", { for: id }, label),
    h("select", { id, name }, options.map(([value, text]) => h("option", { value }, text))));
}

function textField(id, label, name, placeholder) {
  return h("div", { class: "field" },
    h("label", { for: id }, label),
    h("input", { id, name, type: "search", placeholder }));
}

export function mastersTab(ctx) {
  const form = h("form", { class: "filters", "aria-label": "Filter masters" },
    selectField("masters-type", "Type", "frame_type",
      [["", "All types"], ["dark", "Dark"], ["flat", "Flat"], ["bias", "Bias"]]),
    textField("masters-camera", "Camera", "camera_name", "any part of the name"),
    textField("masters-filter", "Filter", "filter", "any part of the name"),
    selectField("masters-status", "Status", "status",
      [["", "Any status"], ["active", "Active"], ["expired", "Expired"], ["superseded", "Superseded"]]));
  const status = statusLine();
  const body = h("tbody");
  const pager = h("div", { class: "pager" });
  let page = 1;
  let observatory = "";

  const panel = h("section", { class: "tab-panel" },
    h("h2", {}, "Masters"), form, status.element,
    h("div", { class: "table-wrap" },
      h("table", { class: "masters" },
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, "Preview"), h("th", { scope: "col" }, "Type"),
          h("th", { scope: "col" }, "Configuration"), h("th", { scope: "col" }, "Temperature"),
          h("th", { scope: "col" }, "Frames"), h("th", { scope: "col" }, "Status"),
          h("th", { scope: "col" }, "Created (UTC)"), h("th", { scope: "col", class: "wide-only" }, "Superseded (UTC)"),
          h("th", { scope: "col" }, "Actions"))),
        body)),
    pager);

  form.addEventListener("change", () => {
    page = 1;
    load();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    page = 1;
    load();
  });

  async function load() {
    const query = { is_master: "true", page, limit: PAGE_SIZE };
    for (const [name, value] of new FormData(form)) query[name] = String(value).trim();
    status.show("busy", "Loading masters…");
    try {
      const result = await ctx.api.get(`${CALIBRATION}/library/${encodeURIComponent(observatory)}`, query);
      releaseImages(body);
      replace(body, result.items.length ? result.items.map(row) : emptyRow());
      renderPager(result);
      status.clear();
    } catch (error) {
      releaseImages(body);
      replace(body);
      replace(pager);
      status.show("error", errorText(error));
    }
  }

  function emptyRow() {
    return h("tr", {}, h("td", { colspan: 9, class: "empty" }, "No masters match."));
  }

  function renderPager(result) {
    if (!result.total) {
      replace(pager);
      return;
    }
    const first = result.total ? (result.page - 1) * result.limit + 1 : 0;
    const last = Math.min(result.total, result.page * result.limit);
    replace(pager,
      h("button", { class: "secondary", disabled: result.page <= 1, onclick: () => { page -= 1; load(); } }, "Previous"),
      h("span", {}, `${first}–${last} of ${result.total}`),
      h("button", { class: "secondary", disabled: last >= result.total, onclick: () => { page += 1; load(); } }, "Next"));
  }

  function row(master) {
    const canManage = ctx.identity.canManage(observatory);
    const expand = h("button", { class: "secondary", "aria-expanded": "false", onclick: () => toggle() },
      "Components");
    const tr = h("tr", { dataset: { masterId: master.id } },
      h("td", {}, h("button", { class: "thumb-button", "aria-label": `Details of master ${master.id}`,
        onclick: () => ctx.openDetail(master) },
      authImage(ctx.api, `${CALIBRATION}/frames/${encodeURIComponent(master.id)}/preview.png`,
        { alt: `Preview of ${master.frame_type} master`, className: "thumb" }))),
      h("td", {}, master.frame_type),
      h("td", {}, describeConfiguration(master)),
      h("td", {}, formatTemperature(master.temperature_c)),
      h("td", { class: "number" }, master.n_frames ?? "—"),
      h("td", {}, statusBadge(master.status)),
      h("td", { class: "date" }, dateTime(master.created_at)),
      h("td", { class: "date wide-only" }, dateTime(master.superseded_at)),
      h("td", { class: "actions" },
        h("button", { class: "secondary", onclick: () => ctx.openDetail(master) }, "Details"),
        expand,
        h("button", { class: "secondary", onclick: () => download(master) }, "Download"),
        canManage && h("button", { class: "danger", onclick: () => remove(master) }, "Delete")));
    let detailRow = null;

    async function toggle() {
      if (detailRow) {
        detailRow.remove();
        detailRow = null;
        expand.setAttribute("aria-expanded", "false");
        return;
      }
      const cell = h("td", { colspan: 9 }, "Loading source frames…");
      detailRow = h("tr", { class: "components-row" }, cell);
      tr.after(detailRow);
      expand.setAttribute("aria-expanded", "true");
      try {
        const result = await ctx.api.get(`${CALIBRATION}/frames/${encodeURIComponent(master.id)}/components`);
        replace(cell, componentsTable(master, result.items));
      } catch (error) {
        replace(cell, h("p", { class: "status error" }, errorText(error)));
      }
    }
    return tr;
  }

  function componentsTable(master, frames) {
    if (!frames.length) return h("p", { class: "empty" }, "No source frames are left (they were deleted).");
    return h("table", { class: "components", "aria-label": `Source frames of master ${master.id}` },
      h("caption", {}, `${frames.length} source frame${frames.length === 1 ? "" : "s"}`),
      h("thead", {}, h("tr", {},
        ["Frame", "Captured (UTC)", "Exposure", "Temperature", "Size", "Actions"].map((text) =>
          h("th", { scope: "col" }, text)))),
      h("tbody", {}, frames.map((frame) => h("tr", { class: "component", dataset: { frameId: frame.id } },
        h("td", { class: "mono" }, frame.id),
        h("td", { class: "date" }, dateTime(frame.captured_at)),
        h("td", {}, `${formatNumber(frame.exposure_s)} s`),
        h("td", {}, formatTemperature(frame.temperature_c)),
        h("td", {}, formatBytes(frame.size_bytes)),
        h("td", { class: "actions" }, frameActions(ctx, frame, { observatory, status, changed: load }))))));
  }

  async function download(master) {
    status.show("busy", "Downloading…");
    try {
      saveBlob(await ctx.api.blob(`${CALIBRATION}/frames/${encodeURIComponent(master.id)}/download`),
        `${master.frame_type}-master-${master.id}.fits`);
      status.clear();
    } catch (error) {
      status.show("error", errorText(error));
    }
  }

  async function remove(master) {
    const confirmed = await confirmDialog({
      title: "Delete master?",
      message: `The ${master.frame_type} master ${describeConfiguration(master)} (${master.status}) and its file ` +
        "are removed permanently. Lights of this configuration are no longer calibrated with it. " +
        "This cannot be undone.",
      confirmLabel: "Delete master",
      danger: true,
    });
    if (!confirmed) return;
    try {
      await ctx.api.request("DELETE", `${CALIBRATION}/frames/${encodeURIComponent(master.id)}`);
      await load();
      status.show("ok", `Master ${master.id} deleted.`);
    } catch (error) {
      status.show("error", errorText(error));
    }
  }

  return {
    panel,
    async show(observatoryId) {
      if (observatoryId !== observatory) page = 1;
      observatory = observatoryId;
      await load();
    },
  };
}
