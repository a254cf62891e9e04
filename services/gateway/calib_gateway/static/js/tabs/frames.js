// Individual frames not yet part of a master, grouped, with progress toward the
// threshold and manual master creation (with force below the threshold).

import { CALIBRATION } from "../api.js";
import { dateTime, describeConfiguration, formatBytes, formatNumber, formatTemperature, h, replace } from "../dom.js";
import { confirmDialog, errorText, progressBar, statusLine } from "../ui.js";

const PAGE_SIZE = 500;
const MAX_FRAMES = 5000;
const CONFIG_FIELDS = ["frame_type", "camera_name", "gain", "offset", "binning", "readout_mode", "exposure_s", "filter"];

/**
 * Split one configuration's frames into temperature clusters as SPEC §4 defines them:
 * sorted by temperature, a new cluster whenever a frame is more than the tolerance above
 * the cluster's first; frames without a temperature form a cluster of their own.
 */
export function clusterByTemperature(frames, tolerance) {
  const known = frames.filter((f) => f.temperature_c !== null && f.temperature_c !== undefined)
    .sort((a, b) => a.temperature_c - b.temperature_c);
  const clusters = [];
  let start = null;
  for (const frame of known) {
    if (start === null || frame.temperature_c - start > tolerance + 1e-9) {
      clusters.push([]);
      start = frame.temperature_c;
    }
    clusters[clusters.length - 1].push(frame);
  }
  const unknown = frames.filter((f) => f.temperature_c === null || f.temperature_c === undefined);
  if (unknown.length) clusters.push(unknown);
  return clusters;
}

function mean(values) {
  const present = values.filter((v) => v !== null && v !== undefined);
  return present.length ? present.reduce((a, b) => a + b, 0) / present.length : null;
}

function groupsOf(frames, settings) {
  const byConfig = new Map();
  for (const frame of frames) {
    const key = frame.config_key || `${frame.frame_type}|${describeConfiguration(frame)}`;
    if (!byConfig.has(key)) byConfig.set(key, []);
    byConfig.get(key).push(frame);
  }
  const groups = [];
  for (const [key, members] of [...byConfig].sort(([a], [b]) => a.localeCompare(b))) {
    for (const cluster of clusterByTemperature(members, settings.temperature_tolerance_c)) {
      groups.push({ key, frames: cluster, sample: cluster[0], temperature: mean(cluster.map((f) => f.temperature_c)) });
    }
  }
  return groups;
}

function temperatureSpan(frames) {
  const values = frames.map((f) => f.temperature_c).filter((v) => v !== null && v !== undefined);
  if (!values.length) return "no temperature";
  const low = Math.min(...values);
  const high = Math.max(...values);
  return low === high ? formatTemperature(low) : `${formatNumber(low, 1)} … ${formatTemperature(high)}`;
}

const LIGHT_STATUS = { calibrated: "calibrated", cal_failed: "failed", no_masters: "no masters" };

/** A light's calibration status; the reason of a failure or of missing masters on hover. */
function lightStatus(frame) {
  const warnings = frame.calibration_warnings || [];
  const reason = frame.calibration_error || warnings.join("; ");
  return h("td", { class: `calibration ${frame.calibration_status}`, title: reason },
    LIGHT_STATUS[frame.calibration_status] || "—", warnings.length ? ` (${warnings.length} warning${warnings.length === 1 ? "" : "s"})` : "");
}

export function framesTab(ctx) {
  const typeSelect = h("select", { id: "frames-type", name: "frame_type" },
    h("option", { value: "" }, "All calibration types"),
    ["dark", "flat", "bias", "light"].map((t) => h("option", { value: t }, t[0].toUpperCase() + t.slice(1))));
  const status = statusLine();
  const list = h("div", { class: "groups" });
  let observatory = "";

  const panel = h("section", { class: "tab-panel" },
    h("h2", {}, "Individual frames"),
    h("p", { class: "hint" }, "Frames not yet stacked into a current master, grouped by configuration and temperature."),
    h("div", { class: "filters" }, h("div", { class: "field" }, h("label", { for: "frames-type" }, "Type"), typeSelect)),
    status.element, list);
  typeSelect.addEventListener("change", () => load());

  async function fetchUnclaimed() {
    const frames = [];
    let total = 0;
    for (let page = 1; frames.length < MAX_FRAMES; page += 1) {
      const result = await ctx.api.get(`${CALIBRATION}/library/${encodeURIComponent(observatory)}`, {
        is_master: "false", exclude_mastered: "true", frame_type: typeSelect.value, page, limit: PAGE_SIZE,
      });
      frames.push(...result.items);
      total = result.total;
      if (frames.length >= total || !result.items.length) break;
    }
    return { frames: typeSelect.value ? frames : frames.filter((f) => f.frame_type !== "light"), total };
  }

  async function load() {
    status.show("busy", "Loading frames…");
    try {
      const [settings, { frames, total }] = await Promise.all([
        ctx.api.get(`${CALIBRATION}/settings/${encodeURIComponent(observatory)}`), fetchUnclaimed()]);
      const groups = groupsOf(frames, settings);
      replace(list, groups.length ? groups.map((g) => groupCard(g, settings))
        : h("p", { class: "empty" }, "No unclaimed frames."));
      if (total > frames.length && frames.length >= MAX_FRAMES) {
        status.show("ok", `Showing the newest ${frames.length} of ${total} frames.`);
      } else {
        status.clear();
      }
    } catch (error) {
      replace(list);
      status.show("error", errorText(error));
    }
  }

  function groupCard(group, settings) {
    const { sample, frames } = group;
    const calibration = sample.frame_type !== "light";
    const threshold = settings.min_frames_for_master;
    const below = frames.length < threshold;
    const title = `${sample.frame_type} · ${describeConfiguration(sample)}`;
    const result = statusLine();
    const create = calibration && ctx.identity.canManage(observatory) &&
      h("button", { class: below ? "secondary" : "primary", onclick: () => createMaster(group, below, result) },
        below ? "Create master (force)" : "Create master");
    return h("article", { class: "group card", dataset: { configKey: group.key } },
      h("header", {},
        h("h3", {}, title),
        h("span", { class: "temperature" }, temperatureSpan(frames))),
      calibration && progressBar({
        value: frames.length, max: threshold, label: `Frames toward a master: ${title}`,
        text: `${frames.length} / ${threshold} frames`,
      }),
      h("div", { class: "actions" }, create, result.element),
      h("details", {},
        h("summary", {}, `${frames.length} frame${frames.length === 1 ? "" : "s"}`),
        h("div", { class: "table-wrap" }, h("table", {},
          h("thead", {}, h("tr", {}, ["Frame", "Captured (UTC)", "Exposure", "Temperature", "Size",
            !calibration && "Calibration"].filter(Boolean).map((text) => h("th", { scope: "col" }, text)))),
          h("tbody", {}, frames.map((frame) => h("tr", {},
            h("td", { class: "mono" }, frame.id),
            h("td", { class: "date" }, dateTime(frame.captured_at || frame.registered_at)),
            h("td", {}, `${formatNumber(frame.exposure_s)} s`),
            h("td", {}, formatTemperature(frame.temperature_c)),
            h("td", {}, formatBytes(frame.size_bytes)),
            !calibration && lightStatus(frame))))))));
  }

  async function createMaster(group, force, result) {
    if (force) {
      const confirmed = await confirmDialog({
        title: "Create a master below the threshold?",
        message: `This group has ${group.frames.length} frames, fewer than the threshold. A master stacked from ` +
          "fewer frames is noisier. Create it anyway?",
        confirmLabel: "Create master",
      });
      if (!confirmed) return;
    }
    const body = { observatory_id: observatory, temperature_c: group.temperature, force };
    for (const name of CONFIG_FIELDS) body[name] = group.sample[name] ?? null;
    result.show("busy", "Queuing…");
    try {
      const job = await ctx.api.request("POST", `${CALIBRATION}/masters/create`, { json: body });
      result.show("ok", "");
      replace(result.element, `Job ${job.id} ${job.status}. `,
        h("a", { href: `#/jobs?obs=${encodeURIComponent(observatory)}` }, "Follow it on the Jobs tab"));
    } catch (error) {
      result.show("error", errorText(error));
    }
  }

  return {
    panel,
    async show(observatoryId) {
      observatory = observatoryId;
      await load();
    },
  };
}
