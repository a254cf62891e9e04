// Upload a pre-made master FITS. Metadata left empty is read from the FITS header.

import { CALIBRATION } from "../api.js";
import { describeConfiguration, h, replace } from "../dom.js";
import { errorText, statusLine } from "../ui.js";

// [name, label, input attributes]
const METADATA = [
  ["camera_name", "Camera", { type: "text" }],
  ["gain", "Gain", { type: "number", step: "any" }],
  ["offset", "Offset", { type: "number", step: "any" }],
  ["binning", "Binning", { type: "text", placeholder: "1x1" }],
  ["readout_mode", "Readout mode", { type: "text" }],
  ["filter", "Filter (flats)", { type: "text" }],
  ["exposure_s", "Exposure (s)", { type: "number", step: "any", min: "0" }],
  ["temperature_c", "Temperature (°C)", { type: "number", step: "any" }],
];

export function uploadTab(ctx) {
  const status = statusLine();
  const result = h("div", { class: "result" });
  const submit = h("button", { type: "submit", class: "primary" }, "Upload master");
  const form = h("form", { class: "upload", "aria-label": "Upload a master frame" },
    h("div", { class: "field" },
      h("label", { for: "upload-file" }, "Master FITS file"),
      h("input", { id: "upload-file", name: "file", type: "file", accept: ".fits,.fit,.fts", required: true })),
    h("div", { class: "field" },
      h("label", { for: "upload-frame_type" }, "Type"),
      h("select", { id: "upload-frame_type", name: "frame_type" },
        h("option", { value: "" }, "From the FITS header"),
        ["dark", "flat", "bias"].map((t) => h("option", { value: t }, t)))),
    h("fieldset", {}, h("legend", {}, "Metadata (empty: read from the header)"),
      h("div", { class: "field-grid" }, METADATA.map(([name, label, attributes]) =>
        h("div", { class: "field" },
          h("label", { for: `upload-${name}` }, label),
          h("input", { id: `upload-${name}`, name, ...attributes }))))),
    h("div", { class: "actions" }, submit, status.element));
  let observatory = "";

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData();
    for (const [name, value] of new FormData(form)) {
      if (value instanceof File ? value.name !== "" : String(value).trim() !== "") {
        data.append(name, value instanceof File ? value : String(value).trim());
      }
    }
    if (!data.has("file")) {
      status.show("error", "Choose a FITS file.");
      return;
    }
    data.append("observatory_id", observatory);
    submit.disabled = true;
    status.show("busy", "Uploading…");
    replace(result);
    try {
      const master = await ctx.api.request("POST", `${CALIBRATION}/masters/upload`, { body: data });
      status.show("ok", `Master ${master.id} stored.`);
      replace(result, h("p", {}, `${master.frame_type} · ${describeConfiguration(master)} `,
        h("button", { type: "button", class: "secondary", onclick: () => ctx.openDetail(master) }, "Details")));
      form.reset();
    } catch (error) {
      status.show("error", errorText(error));
    } finally {
      submit.disabled = false;
    }
  });

  const panel = h("section", { class: "tab-panel" }, h("h2", {}, "Upload a master frame"), form, result);
  return {
    panel,
    async show(observatoryId) {
      observatory = observatoryId;
    },
  };
}
