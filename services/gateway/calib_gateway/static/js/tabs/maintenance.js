// Server administration: expiry check, retention cleanup, cache clear, health.

import { CALIBRATION } from "../api.js";
import { dateTime, formatDate, formatNumber, h, replace } from "../dom.js";
import { errorText, statusLine } from "../ui.js";

const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d/;

/** An action's report (counts, ids, a time) as a key/value list. */
function describe(report) {
  return h("dl", { class: "kv" }, Object.entries(report).map(([key, value]) => {
    let text = value;
    if (value === null || value === undefined) text = "—";
    else if (typeof value === "string" && TIMESTAMP.test(value)) text = `${formatDate(value)} UTC`;
    else if (Array.isArray(value)) text = value.length ? value.join(", ") : "none";
    return [h("dt", {}, key.replaceAll("_", " ")), h("dd", {}, String(text))];
  }));
}

function state(ok, yes = "ok", no = "down") {
  return h("span", { class: ok ? "ok-text" : "bad-text" }, ok ? yes : no);
}

function table(caption, headings, rows) {
  return h("div", { class: "table-wrap" }, h("table", {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, headings.map((text) => h("th", { scope: "col" }, text)))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: headings.length, class: "empty" }, "none")))));
}

/** `GET /health`: dependencies, service heartbeats, consumer backlogs. */
function healthReport(report) {
  return [
    h("p", {}, "Overall: ", state(report.status === "ok", "ok", report.detail || report.status)),
    table("Dependencies", ["Dependency", "State", "Latency", "Error"],
      Object.entries(report.dependencies).map(([name, check]) => h("tr", {},
        h("td", {}, name), h("td", {}, state(check.ok)),
        h("td", { class: "number" }, check.latency_ms === null ? "—" : `${formatNumber(check.latency_ms, 1)} ms`),
        h("td", { class: "error-text" }, check.error || "")))),
    table("Services", ["Service", "Instance", "Last heartbeat (UTC)", "Age", "State"],
      report.services.map((service) => h("tr", {},
        h("td", {}, service.service), h("td", { class: "mono" }, service.instance),
        h("td", { class: "date" }, dateTime(service.last_heartbeat)),
        h("td", { class: "number" }, `${formatNumber(service.age_s, 1)} s`),
        h("td", {}, state(service.alive, "alive", "silent"))))),
    table("Consumers", ["Service", "Durable consumer", "Pending", "Unacknowledged", "Redelivered", "Error"],
      Object.values(report.consumers).map((consumer) => h("tr", {},
        h("td", {}, consumer.service), h("td", { class: "mono" }, consumer.durable),
        h("td", { class: "number" }, consumer.pending ?? "—"),
        h("td", { class: "number" }, consumer.ack_pending ?? "—"),
        h("td", { class: "number" }, consumer.redelivered ?? "—"),
        h("td", { class: "error-text" }, consumer.error || "")))),
  ];
}

export function maintenanceTab(ctx) {
  const health = h("div", { class: "health" });
  const healthStatus = statusLine();
  const scopeAll = h("input", { id: "scope-all", type: "radio", name: "scope", value: "all", checked: true });
  const scopeOne = h("input", { id: "scope-one", type: "radio", name: "scope", value: "one" });
  const scopeOneLabel = h("label", { for: "scope-one" }, "Only the selected observatory");

  /** The observatory the actions are limited to, if any (a query parameter of each). */
  function scope() {
    return scopeOne.checked ? { observatory_id: ctx.observatory() } : {};
  }

  function action(title, description, path) {
    const result = h("div", { class: "result" });
    const status = statusLine();
    const button = h("button", { class: "primary" }, title);
    button.addEventListener("click", async () => {
      button.disabled = true;
      status.show("busy", "Running…");
      replace(result);
      try {
        replace(result, describe(await ctx.api.request("POST", path, { query: scope() })));
        status.show("ok", `${title}: done.`);
      } catch (error) {
        status.show("error", errorText(error));
      } finally {
        button.disabled = false;
      }
    });
    return h("article", { class: "card maintenance-action" },
      h("h3", {}, title), h("p", { class: "hint" }, description),
      h("div", { class: "actions" }, button, status.element), result);
  }

  async function loadHealth() {
    healthStatus.show("busy", "Checking…");
    try {
      replace(health, healthReport(await ctx.api.get(`${CALIBRATION}/health`)));
      healthStatus.clear();
    } catch (error) {
      // a dependency that is down answers 503 with the whole report
      replace(health, error.status === 503 && error.body && error.body.dependencies ? healthReport(error.body) : []);
      healthStatus.show("error", errorText(error));
    }
  }

  const panel = h("section", { class: "tab-panel" },
    h("h2", {}, "Maintenance"),
    h("fieldset", { class: "scope" }, h("legend", {}, "Run on"),
      h("div", { class: "check" }, scopeAll, h("label", { for: "scope-all" }, "All observatories")),
      h("div", { class: "check" }, scopeOne, scopeOneLabel)),
    h("div", { class: "maintenance-grid" },
      action("Run expiry check", "Mark current masters older than their type's max age as expired.",
        `${CALIBRATION}/maintenance/expiry-check`),
      action("Run retention cleanup",
        "Delete individual frames and superseded masters past their retention, and orphaned files.",
        `${CALIBRATION}/maintenance/retention-cleanup`),
      action("Clear calibrated cache", "Delete cached calibrated lights so they are calibrated again.",
        `${CALIBRATION}/cache/clear`)),
    h("section", { class: "card" },
      h("div", { class: "section-head" },
        h("h3", {}, "Health"),
        h("button", { class: "secondary", onclick: loadHealth }, "Refresh")),
      healthStatus.element, health));

  return {
    panel,
    async show(observatory) {
      replace(scopeOneLabel, `Only observatory ${observatory}`);
      await loadHealth();
    },
  };
}
