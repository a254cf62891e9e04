// Calibration settings of an observatory (SPEC §3). The ranges are shown as guidance;
// the server decides, and a refused value shows the server's message at its field.

import { CALIBRATION } from "../api.js";
import { h, replace } from "../dom.js";
import { errorText, statusLine } from "../ui.js";

// [name, label, kind, allowed, default, description]; kind "int" | "float" | "bool" | choices array
const SECTIONS = [
  ["Frame thresholds", [
    ["min_frames_for_master", "Min frames for master", "int", [3, 100], 10,
      "Individual frames needed before auto-stacking triggers."],
    ["camera_type", "Camera type", ["CMOS", "CCD"], null, "CMOS",
      "CMOS darks must match the exposure time; CCD darks are scaled."],
  ]],
  ["Stacking method", [
    ["stacking_method", "Stacking method", ["mean", "median", "sigma_clip"], null, "sigma_clip",
      "How frames are combined per pixel."],
    ["sigma_clip_value", "Sigma clip value", "float", [0.5, 10.0], 3.0,
      "Rejection threshold in standard deviations (sigma_clip only)."],
    ["sigma_clip_iterations", "Sigma clip iterations", "int", [1, 20], 5, "Rejection passes (sigma_clip only)."],
  ]],
  ["Temperature matching", [
    ["temperature_tolerance_c", "Temperature tolerance (°C)", "float", [0.1, 20.0], 2.0,
      "Largest temperature spread within a stack, and for dark matching."],
  ]],
  ["Expiry and retention", [
    ["dark_max_age_days", "Dark max age (days)", "int", [1, 3650], 30, "Age at which a master dark expires."],
    ["flat_max_age_days", "Flat max age (days)", "int", [1, 3650], 7, "Age at which a master flat expires."],
    ["bias_max_age_days", "Bias max age (days)", "int", [1, 3650], 90, "Age at which a master bias expires."],
    ["individual_frame_retention_days", "Individual frame retention (days)", "int", [1, 3650], 30,
      "Days individual frames are kept after they were used in a master."],
    ["master_retention_days", "Master retention (days)", "int", [1, 3650], 180,
      "Days superseded masters are kept before deletion."],
  ]],
  ["Rotation matching (flats)", [
    ["rotation_matching", "Require rotation-matched flats", ["ignore", "preferred", "required"], null, "ignore",
      "Whether flat masters must match the rotation angle of lights."],
    ["rotation_tolerance_deg", "Rotation tolerance (°)", "float", [0.0, 180.0], 1.0,
      "Acceptable rotation angle difference."],
  ]],
  ["Quality gates", [
    ["quality_gates_enabled", "Quality gates", "bool", null, "on",
      "Hold frames that fail a gate out of masters (they stay in the library until released)."],
    ["gate_sigma", "Dark/bias level limit (robust sigmas)", "float", [1.0, 1000.0], 5.0,
      "A dark or bias whose median is further from its group's is held (light leak, offset jump)."],
    ["flat_median_min_fraction", "Flat median, lowest (fraction of full scale)", "float", [0.0, 0.45], 0.02,
      "A dimmer flat is held."],
    ["flat_median_max_fraction", "Flat median, highest (fraction of full scale)", "float", [0.5, 1.0], 0.9,
      "A brighter flat is held (past the linear range)."],
    ["flat_saturated_max_fraction", "Flat saturated pixels, most (fraction)", "float", [0.0, 1.0], 0.001,
      "A flat with more pixels at full scale is held."],
  ]],
];

const ON_OFF = [["true", "on"], ["false", "off"]];

function allowedText(kind, range) {
  if (kind === "bool") return "On or off";
  if (Array.isArray(kind)) return `One of ${kind.join(", ")}`;
  const [low, high] = range;
  const decimal = (v) => (Number.isInteger(v) ? v.toFixed(1) : String(v));
  return kind === "int" ? `Integer ${low}–${high}` : `${decimal(low)}–${decimal(high)}`;
}

export function settingsTab(ctx) {
  const fields = new Map(); // name -> {input, error, kind}
  const status = statusLine();
  const save = h("button", { type: "submit", class: "primary" }, "Save settings");
  const form = h("form", { class: "settings", novalidate: true, "aria-label": "Calibration settings" },
    SECTIONS.map(([legend, items]) => h("fieldset", {}, h("legend", {}, legend), items.map(field))),
    h("div", { class: "actions" }, save, status.element));
  let observatory = "";

  function field([name, label, kind, range, fallback, description]) {
    const id = `setting-${name}`;
    const input = kind === "bool"
      ? h("select", { id, name }, ON_OFF.map(([value, text]) => h("option", { value }, text)))
      : Array.isArray(kind)
      ? h("select", { id, name }, kind.map((option) => h("option", { value: option }, option)))
      : h("input", { id, name, type: "number", inputmode: kind === "int" ? "numeric" : "decimal",
        step: kind === "int" ? "1" : "any", min: String(range[0]), max: String(range[1]) });
    input.setAttribute("aria-describedby", `${id}-hint ${id}-error`);
    const error = h("p", { id: `${id}-error`, class: "field-error", role: "alert" });
    fields.set(name, { input, error, kind });
    return h("div", { class: "field", dataset: { setting: name } },
      h("label", { for: id }, label), input,
      h("p", { id: `${id}-hint`, class: "hint" }, `${allowedText(kind, range)} (default ${fallback}). ${description}`),
      error);
  }

  function values() {
    const changes = {};
    for (const [name, { input, kind }] of fields) {
      if (kind === "bool") changes[name] = input.value === "true";
      else if (Array.isArray(kind)) changes[name] = input.value;
      else changes[name] = input.value.trim() === "" ? null : Number(input.value);
    }
    return changes;
  }

  function fill(settings) {
    for (const [name, { input }] of fields) input.value = String(settings[name]);
  }

  function clearErrors() {
    for (const { input, error } of fields.values()) {
      input.removeAttribute("aria-invalid");
      replace(error);
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    status.show("busy", "Saving…");
    save.disabled = true;
    try {
      fill(await ctx.api.request("PUT", `${CALIBRATION}/settings/${encodeURIComponent(observatory)}`,
        { json: values() }));
      status.show("ok", "Settings saved.");
    } catch (error) {
      const name = error.field || [...fields.keys()].find((n) => error.detail && error.detail.includes(n));
      const target = fields.get(name);
      if (error.status === 422 && target) {
        target.input.setAttribute("aria-invalid", "true");
        replace(target.error, error.detail);
        target.input.focus();
        status.show("error", "Not saved: one value was refused.");
      } else {
        status.show("error", errorText(error));
      }
    } finally {
      save.disabled = false;
    }
  });

  const panel = h("section", { class: "tab-panel" }, h("h2", {}, "Calibration settings"), form);

  return {
    panel,
    async show(observatoryId) {
      observatory = observatoryId;
      clearErrors();
      status.clear();
      const editable = ctx.identity.canManage(observatory);
      for (const { input } of fields.values()) input.disabled = !editable;
      save.hidden = !editable;
      try {
        fill(await ctx.api.get(`${CALIBRATION}/settings/${encodeURIComponent(observatory)}`));
      } catch (error) {
        status.show("error", errorText(error));
      }
    },
  };
}
