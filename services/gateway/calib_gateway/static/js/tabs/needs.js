// What the observatory still needs (SPEC §9): uncovered configurations, accumulation
// progress, expiry warnings, deferred groups, active jobs, and the capture plan.

import { CALIBRATION } from "../api.js";
import { dateTime, describeConfiguration, formatNumber, formatTemperature, h, replace } from "../dom.js";
import { errorText, progressBar, statusBadge, statusLine } from "../ui.js";

const REASONS = {
  uncovered: "no current master",
  expired: "only an expired master",
  prerequisite: "waiting for a prerequisite master",
};

/** Configuration fields sit on the item (needs) or under `configuration` (groups, jobs). */
function flat(item) {
  return { ...(item.configuration || {}), ...item };
}

function section(title, items, render, empty) {
  return h("section", { class: "needs-section card" },
    h("h3", {}, `${title} (${items.length})`),
    items.length ? render(items) : h("p", { class: "empty" }, empty));
}

function table(headings, rows) {
  return h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, headings.map((text) => h("th", { scope: "col" }, text)))),
    h("tbody", {}, rows)));
}

function configurationCells(item) {
  const value = flat(item);
  return [h("td", {}, value.frame_type), h("td", {}, describeConfiguration(value)),
    h("td", {}, formatTemperature(value.temperature_c))];
}

export function needsTab(ctx) {
  const status = statusLine();
  const content = h("div", { class: "needs" });
  const panel = h("section", { class: "tab-panel" }, h("h2", {}, "Calibration needs"), status.element, content);

  function render(needs, plan) {
    replace(content,
      section("Uncovered configurations", needs.uncovered_configurations, (items) =>
        table(["Type", "Configuration", "Temperature", "Why", "Lights"], items.map((item) =>
          h("tr", {}, configurationCells(item), h("td", {}, REASONS[item.reason] || item.reason),
            h("td", { class: "number" }, item.light_count)))),
      "Every configuration used by recent lights has its masters."),
      section("Accumulation progress", needs.accumulation_progress, (items) =>
        h("ul", { class: "plain" }, items.map((item) => {
          const name = `${item.frame_type} · ${describeConfiguration(flat(item))} · ${formatTemperature(item.temperature_c)}`;
          return h("li", {}, h("div", {}, name),
            progressBar({ value: item.count, max: item.threshold, label: `Frames toward a master: ${name}`,
              text: `${item.count} / ${item.threshold} (${formatNumber(item.percent, 0)} %)` }));
        })),
      "No group is accumulating frames."),
      section("Expiry warnings", needs.expiry_warnings, (items) =>
        table(["Type", "Camera", "Temperature", "State", "Age (days)", "Expires (UTC)"], items.map((item) =>
          h("tr", {}, h("td", {}, item.frame_type), h("td", {}, item.camera_name),
            h("td", {}, formatTemperature(item.temperature_c)), h("td", {}, statusBadge(item.state)),
            h("td", { class: "number" }, `${formatNumber(item.age_days, 1)} / ${item.max_age_days}`),
            h("td", { class: "date" }, dateTime(item.expires_at))))),
      "No master is expired or expiring soon."),
      section("Deferred", needs.deferred, (items) =>
        table(["Type", "Configuration", "Temperature", "Frames", "Reason"], items.map((item) =>
          h("tr", {}, configurationCells(item), h("td", { class: "number" }, item.frame_count),
            h("td", { class: "warn-text" }, item.reason || "")))),
      "Nothing is waiting for a prerequisite master."),
      section("Active jobs", needs.active_jobs, (items) =>
        table(["Type", "Configuration", "Temperature", "Status", "Frames", "Progress"], items.map((item) =>
          h("tr", {}, configurationCells(item), h("td", {}, statusBadge(item.status)),
            h("td", { class: "number" }, item.frame_count),
            h("td", { class: "number" }, `${Math.round(item.progress * 100)} %`)))),
      "No job is queued or running."),
      section("Capture plan", plan.items, (items) =>
        table(["Type", "Configuration", "Temperature", "Have", "Target", "Capture"], items.map((item) =>
          h("tr", {}, configurationCells(item), h("td", { class: "number" }, item.current_count),
            h("td", { class: "number" }, item.target_count), h("td", { class: "number" }, item.remaining)))),
      "Nothing to capture."));
  }

  return {
    panel,
    async show(observatory) {
      status.show("busy", "Loading needs…");
      try {
        const id = encodeURIComponent(observatory);
        const [needs, plan] = await Promise.all([
          ctx.api.get(`${CALIBRATION}/needs/${id}`), ctx.api.get(`${CALIBRATION}/capture-plan/${id}`)]);
        render(needs, plan);
        status.clear();
      } catch (error) {
        replace(content);
        status.show("error", errorText(error));
      }
    },
  };
}
