// Stacking jobs with live progress (server-sent events), errors, retry and delete.

import { CALIBRATION } from "../api.js";
import { dateTime, describeConfiguration, formatTemperature, h, replace } from "../dom.js";
import { streamEvents } from "../events.js";
import { confirmDialog, errorText, progressBar, statusBadge, statusLine } from "../ui.js";

const POLL_MS = 5000; // only while the event stream is down
const RELOAD_DEBOUNCE_MS = 300;
const COLUMNS = 9;

function percent(value) {
  return `${Math.round((value || 0) * 100)} %`;
}

export function jobsTab(ctx) {
  const statusSelect = h("select", { id: "jobs-status", name: "status" },
    h("option", { value: "" }, "Any status"),
    ["queued", "running", "succeeded", "failed", "deferred"].map((s) => h("option", { value: s }, s)));
  const live = h("span", { class: "live", "aria-live": "polite" }, "");
  const status = statusLine();
  const body = h("tbody");
  let observatory = "";
  let stream = null;
  let poll = null;
  let reloadTimer = null;
  // the newest progress heard live per job: a reload may read a slightly older value from the database
  const heard = new Map();

  const panel = h("section", { class: "tab-panel" },
    h("h2", {}, "Stacking jobs"),
    h("div", { class: "filters" },
      h("div", { class: "field" }, h("label", { for: "jobs-status" }, "Status"), statusSelect),
      live),
    status.element,
    h("div", { class: "table-wrap" }, h("table", { class: "jobs" },
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, "Status"), h("th", { scope: "col" }, "Type"),
        h("th", { scope: "col" }, "Configuration"), h("th", { scope: "col", class: "wide-only" }, "Trigger"),
        h("th", { scope: "col" }, "Frames"), h("th", { scope: "col" }, "Progress"),
        h("th", { scope: "col", class: "wide-only" }, "Created (UTC)"), h("th", { scope: "col" }, "Finished (UTC)"),
        h("th", { scope: "col" }, "Actions"))),
      body)));
  statusSelect.addEventListener("change", () => load());

  async function load() {
    try {
      const result = await ctx.api.get(`${CALIBRATION}/jobs/${encodeURIComponent(observatory)}`,
        { status: statusSelect.value });
      const jobs = [...result.items].sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
      replace(body, jobs.length ? jobs.flatMap(row)
        : h("tr", {}, h("td", { colspan: COLUMNS, class: "empty" }, "No jobs.")));
      if (status.element.classList.contains("error")) status.clear();
    } catch (error) {
      status.show("error", errorText(error));
    }
  }

  function scheduleReload() {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(load, RELOAD_DEBOUNCE_MS);
  }

  /** The job's row, and below it a full-width row with its error or deferral reason. */
  function row(job) {
    const configuration = { ...job.configuration, temperature_c: job.temperature_c };
    const failed = job.status === "failed";
    let progress = job.status === "succeeded" ? 1 : job.progress;
    if (job.status === "running") progress = Math.max(progress, heard.get(job.id) ?? 0);
    const finished = ["succeeded", "failed"].includes(job.status);
    const problem = job.error || job.deferred_reason;
    const main = h("tr", { dataset: { jobId: job.id, status: job.status }, class: problem ? "has-problem" : "" },
      h("td", {}, statusBadge(job.status)),
      h("td", {}, job.frame_type),
      h("td", {}, describeConfiguration(configuration), " · ", formatTemperature(job.temperature_c)),
      h("td", { class: "wide-only" }, job.trigger),
      h("td", { class: "number" }, job.frame_ids.length),
      h("td", {}, progressBar({ value: progress, label: `Progress of job ${job.id}`, text: percent(progress),
        dataset: { jobId: job.id } })),
      h("td", { class: "date wide-only" }, dateTime(job.created_at)),
      h("td", { class: "date" }, finished ? dateTime(job.finished_at || job.updated_at) : "—"),
      h("td", { class: "actions" },
        failed && h("button", { class: "secondary", onclick: () => retry(job) }, "Retry"),
        failed && ctx.identity.serverAdmin &&
          h("button", { class: "danger", onclick: () => remove(job) }, "Delete")));
    if (!problem) return main;
    return [main, h("tr", { class: `job-problem ${failed ? "error-text" : "warn-text"}` },
      h("td", { colspan: COLUMNS }, failed ? `Error: ${problem}` : problem))];
  }

  /** A live event: move the job's bar at once; reload when the job is new or changed state. */
  function onEvent({ data }) {
    if (!data || typeof data !== "object" || !data.job_id) return;
    if (typeof data.progress === "number") heard.set(data.job_id, data.progress);
    else if (data.status === "queued") heard.delete(data.job_id); // queued again: starts from 0
    const tr = body.querySelector(`tr[data-job-id="${CSS.escape(data.job_id)}"]`);
    if (!tr) {
      scheduleReload();
      return;
    }
    if (typeof data.progress === "number") {
      const bar = tr.querySelector("progress");
      bar.value = data.progress;
      tr.querySelector(".progress-text").textContent = percent(data.progress);
    }
    if (data.status && data.status !== tr.dataset.status) scheduleReload();
  }

  /** Live: catch up on what happened while not connected. Otherwise: poll until live again. */
  function onState(state) {
    clearInterval(poll);
    poll = null;
    if (state === "live") {
      live.textContent = "● live";
      load();
    } else {
      live.textContent = state === "reconnecting" ? "reconnecting…" : `live updates unavailable: ${errorText(state)}`;
      poll = setInterval(load, POLL_MS);
    }
    live.className = `live ${state === "live" ? "on" : "off"}`;
  }

  async function retry(job) {
    try {
      await ctx.api.request("POST", `${CALIBRATION}/jobs/${encodeURIComponent(job.id)}/retry`);
      heard.delete(job.id);
      status.show("ok", `Job ${job.id} queued again.`);
      await load();
    } catch (error) {
      status.show("error", errorText(error));
    }
  }

  async function remove(job) {
    const confirmed = await confirmDialog({
      title: "Delete failed job?",
      message: `The failed job ${job.id} and its error are removed. Its frames stay in the library.`,
      confirmLabel: "Delete job",
      danger: true,
    });
    if (!confirmed) return;
    try {
      await ctx.api.request("DELETE", `${CALIBRATION}/jobs/${encodeURIComponent(job.id)}`);
      status.show("ok", `Job ${job.id} deleted.`);
      await load();
    } catch (error) {
      status.show("error", errorText(error));
    }
  }

  function stop() {
    if (stream) stream.abort();
    clearInterval(poll);
    clearTimeout(reloadTimer);
    stream = null;
    poll = null;
  }

  return {
    panel,
    async show(observatoryId) {
      stop();
      if (observatoryId !== observatory) replace(body);
      observatory = observatoryId;
      stream = new AbortController();
      await load();
      streamEvents(ctx.api, `${CALIBRATION}/events/${encodeURIComponent(observatory)}`,
        { signal: stream.signal, onEvent, onState });
    },
    leave: stop,
  };
}
