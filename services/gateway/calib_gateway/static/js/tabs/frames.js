// Individual frames not yet part of a master, in the server's groups, with progress toward
// the threshold and manual master creation (with force below the threshold); held frames
// with their reasons; per-frame preview, download, delete and release.

import { CALIBRATION } from "../api.js";
import { dateTime, describeConfiguration, formatBytes, formatNumber, formatTemperature, h, replace } from "../dom.js";
import { deleteFrames, frameActions, releaseFrames } from "../frameactions.js";
import { confirmDialog, errorText, progressBar, statusLine } from "../ui.js";

const PAGE_SIZE = 500;
const MAX_FRAMES = 5000;
const CONFIG_FIELDS = ["frame_type", "camera_name", "gain", "offset", "binning", "readout_mode", "exposure_s", "filter"];

function mean(values) {
  const present = values.filter((v) => v !== null && v !== undefined);
  return present.length ? present.reduce((a, b) => a + b, 0) / present.length : null;
}

/**
 * Frames in the groups the server stacks (its `group_key`, with the group's progress in
 * `group`); lights, which are never stacked, by their displayed configuration.
 */
function groupsOf(frames) {
  const byKey = new Map();
  for (const frame of frames) {
    const key = frame.group_key || `${frame.frame_type}|${describeConfiguration(frame)}`;
    if (!byKey.has(key)) byKey.set(key, []);
    byKey.get(key).push(frame);
  }
  return [...byKey].sort(([a], [b]) => a.localeCompare(b)).map(([key, members]) => ({
    key, frames: members, sample: members[0], progress: members[0].group,
    temperature: mean(members.map((f) => f.temperature_c)),
  }));
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
  const heldView = h("section", { class: "held card", "aria-labelledby": "held-title" });
  let observatory = "";

  const panel = h("section", { class: "tab-panel" },
    h("h2", {}, "Individual frames"),
    h("p", { class: "hint" }, "Frames not yet stacked into a current master, in the groups the server stacks " +
      "(configuration and temperature). Held frames are kept out of masters until released."),
    h("div", { class: "filters" }, h("div", { class: "field" }, h("label", { for: "frames-type" }, "Type"), typeSelect)),
    status.element, heldView, list);
  typeSelect.addEventListener("change", () => load());

  async function fetchAll(query) {
    const frames = [];
    let total = 0;
    for (let page = 1; frames.length < MAX_FRAMES; page += 1) {
      const result = await ctx.api.get(`${CALIBRATION}/library/${encodeURIComponent(observatory)}`, {
        is_master: "false", frame_type: typeSelect.value, page, limit: PAGE_SIZE, ...query,
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
      const [settings, { frames, total }, held] = await Promise.all([
        ctx.api.get(`${CALIBRATION}/settings/${encodeURIComponent(observatory)}`),
        fetchAll({ exclude_mastered: "true", held: "false" }), fetchAll({ held: "true" })]);
      renderHeld(held.frames);
      const groups = groupsOf(frames);
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

  function renderHeld(frames) {
    if (!frames.length) {
      heldView.hidden = true;
      replace(heldView);
      return;
    }
    heldView.hidden = false;
    const canManage = ctx.identity.canManage(observatory);
    const result = statusLine();
    const boxes = new Map();
    const selected = () => frames.filter((f) => boxes.get(f.id).checked);
    async function bulk(busy, action) {
      const chosen = selected();
      if (!chosen.length) {
        result.show("error", "Select frames first.");
        return;
      }
      result.show("busy", busy);
      try {
        const text = await action(chosen);
        if (text === null) {
          result.clear();
          return;
        }
        await load();
        status.show("ok", text);
      } catch (error) {
        result.show("error", errorText(error));
      }
    }
    const all = h("input", { type: "checkbox", id: "held-all", "aria-label": "Select all held frames",
      onchange: () => { for (const box of boxes.values()) box.checked = all.checked; } });
    replace(heldView,
      h("h3", { id: "held-title" }, `Held frames (${frames.length})`),
      h("p", { class: "hint" }, "Not stacked by any trigger, sweep or manual creation until released."),
      canManage && h("div", { class: "actions" },
        h("button", { class: "primary", onclick: () => bulk("Releasing…", async (chosen) => {
          const answer = await releaseFrames(ctx.api, chosen);
          return `${answer.released.length} frame${answer.released.length === 1 ? "" : "s"} released` +
            (answer.jobs.length ? `; ${answer.jobs.length} stacking job${answer.jobs.length === 1 ? "" : "s"} queued.` : ".");
        }) }, "Release selected"),
        h("button", { class: "danger", onclick: () => bulk("Deleting…", async (chosen) => {
          const deleted = await deleteFrames(ctx.api, chosen);
          return deleted ? `${deleted} frame${deleted === 1 ? "" : "s"} deleted.` : null;
        }) }, "Delete selected"),
        result.element),
      h("div", { class: "table-wrap" }, h("table", { class: "held-frames" },
        h("thead", {}, h("tr", {},
          canManage && h("th", { scope: "col" }, all),
          h("th", { scope: "col" }, "Frame"), h("th", { scope: "col", class: "wide-only" }, "Type"),
          h("th", { scope: "col" }, "Configuration"), h("th", { scope: "col", class: "wide-only" }, "Captured (UTC)"),
          h("th", { scope: "col" }, "Reason"), h("th", { scope: "col" }, "Actions"))),
        h("tbody", {}, frames.map((frame) => {
          const box = h("input", { type: "checkbox", "aria-label": `Select frame ${frame.id}` });
          boxes.set(frame.id, box);
          return h("tr", { class: "held-frame", dataset: { frameId: frame.id } },
            canManage && h("td", {}, box),
            h("td", { class: "mono" }, frame.id),
            h("td", { class: "wide-only" }, frame.frame_type),
            h("td", {}, describeConfiguration(frame)),
            h("td", { class: "date wide-only" }, dateTime(frame.captured_at || frame.registered_at)),
            h("td", { class: "reason" }, frame.held_reason || "—"),
            h("td", { class: "actions" }, frameActions(ctx, frame, { observatory, status: result, changed: load })));
        })))));
  }

  function groupCard(group, settings) {
    const { sample, frames, progress } = group;
    const calibration = sample.frame_type !== "light";
    const threshold = progress ? progress.threshold : settings.min_frames_for_master;
    const counted = progress ? progress.unclaimed : frames.length;
    const below = progress ? !progress.complete : frames.length < threshold;
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
        value: counted, max: threshold, label: `Frames toward a master: ${title}`,
        text: `${counted} / ${threshold} frames`,
      }),
      h("div", { class: "actions" }, create, result.element),
      h("details", {},
        h("summary", {}, `${frames.length} frame${frames.length === 1 ? "" : "s"}`),
        h("div", { class: "table-wrap" }, h("table", {},
          h("thead", {}, h("tr", {}, ["Frame", "Captured (UTC)", "Exposure", "Temperature", "Size",
            !calibration && "Calibration", "Actions"].filter(Boolean).map((text) => h("th", { scope: "col" }, text)))),
          h("tbody", {}, frames.map((frame) => h("tr", { dataset: { frameId: frame.id } },
            h("td", { class: "mono" }, frame.id),
            h("td", { class: "date" }, dateTime(frame.captured_at || frame.registered_at)),
            h("td", {}, `${formatNumber(frame.exposure_s)} s`),
            h("td", {}, formatTemperature(frame.temperature_c)),
            h("td", {}, formatBytes(frame.size_bytes)),
            !calibration && lightStatus(frame),
            h("td", { class: "actions" }, frameActions(ctx, frame, { observatory, status: result, changed: load })))))))));
  }

  async function createMaster(group, force, result) {
    if (force) {
      const confirmed = await confirmDialog({
        title: "Create a master below the threshold?",
        message: `This group has ${group.frames.length} frames to stack, fewer than the threshold. A master stacked from ` +
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
