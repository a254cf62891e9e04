// A master's detail: preview, histogram of its pixel values, statistics, provenance header.

import { CALIBRATION } from "./api.js";
import { describeConfiguration, formatBytes, formatDate, formatNumber, formatTemperature, h, replace } from "./dom.js";
import { histogramOf, readFits } from "./fits.js";
import { authImage, errorText, releaseImages, statusBadge } from "./ui.js";

function drawHistogram(canvas, histogram) {
  const context = canvas.getContext("2d");
  const { width, height } = canvas;
  const axis = 18;
  const plotHeight = height - axis;
  const style = getComputedStyle(canvas);
  context.clearRect(0, 0, width, height);
  const heights = Array.from(histogram.counts, (count) => Math.log10(1 + count));
  const top = Math.max(...heights, 1e-9);
  const barWidth = width / heights.length;
  context.fillStyle = style.getPropertyValue("--bar").trim() || "#3b6ea8";
  heights.forEach((value, index) => {
    const bar = (value / top) * (plotHeight - 4);
    context.fillRect(index * barWidth, plotHeight - bar, Math.max(1, barWidth - 0.5), bar);
  });
  context.fillStyle = style.color;
  context.font = "11px system-ui, sans-serif";
  context.textBaseline = "bottom";
  context.textAlign = "left";
  context.fillText(formatNumber(histogram.low, 4), 2, height);
  context.textAlign = "right";
  context.fillText(formatNumber(histogram.high, 4), width - 2, height);
}

function definitionList(entries) {
  return h("dl", { class: "kv" }, entries.filter(([, value]) => value !== undefined).map(([key, value]) =>
    [h("dt", {}, key), h("dd", {}, value ?? "—")]));
}

function methodText(master) {
  const params = master.method_params || {};
  const parts = Object.entries(params).map(([k, v]) => `${k} ${formatNumber(v)}`);
  return [master.method, parts.join(", ")].filter(Boolean).join(" · ");
}

export function openMasterDetail(api, master) {
  const id = encodeURIComponent(master.id);
  const stats = master.stats || {};
  const canvas = h("canvas", { width: 560, height: 180, class: "histogram", role: "img",
    "aria-label": "Histogram of pixel values (logarithmic counts)" });
  const histogramNote = h("p", { class: "hint" }, "Reading pixel values…");
  const provenance = h("pre", { class: "fits-header", tabindex: "0", "aria-label": "FITS header" }, "Reading header…");
  const title = `${master.frame_type} master · ${describeConfiguration(master)}`;
  const closeButton = h("button", { class: "secondary close", "aria-label": "Close" }, "Close");
  const dialog = h("dialog", { class: "detail", "aria-labelledby": "detail-title" },
    h("header", {}, h("h2", { id: "detail-title" }, title), closeButton),
    h("div", { class: "detail-grid" },
      h("figure", { class: "preview" },
        authImage(api, `${CALIBRATION}/frames/${id}/preview.png`, { alt: `Preview of ${title}`, className: "full" }),
        h("figcaption", {}, "Preview (asinh stretch)")),
      h("div", {},
        h("h3", {}, "Master"),
        definitionList([
          ["Id", h("span", { class: "mono" }, master.id)],
          ["Status", statusBadge(master.status)],
          ["Frames", master.n_frames],
          ["Method", methodText(master)],
          ["Temperature", `${formatTemperature(master.temperature_c)}` +
            (master.temperature_min_c != null ? ` (${formatNumber(master.temperature_min_c, 1)} … ${formatTemperature(master.temperature_max_c)})` : "")],
          ["Size", `${master.width} × ${master.height} px, ${formatBytes(master.size_bytes)}`],
          ["Created", `${formatDate(master.created_at)} UTC`],
          ["Superseded", master.superseded_at ? `${formatDate(master.superseded_at)} UTC by ${master.superseded_by}` : "—"],
          ["Job", master.job_id ? h("span", { class: "mono" }, master.job_id) : "—"],
        ]),
        h("h3", {}, "Statistics"),
        master.stats ? definitionList(Object.entries(stats).map(([key, value]) =>
          [key.replaceAll("_", " "), typeof value === "number" ? formatNumber(value, 4) : String(value)]))
          : h("p", { class: "empty" }, "No statistics yet: an uploaded master gets them moments after it is stored."))),
    h("section", {}, h("h3", {}, "Histogram"), canvas, histogramNote),
    h("section", {}, h("h3", {}, "Provenance (FITS header)"), provenance));

  const reading = new AbortController();
  closeButton.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    reading.abort();
    releaseImages(dialog);
    dialog.remove();
  });
  document.body.append(dialog);
  dialog.showModal();
  closeButton.focus();

  (async () => {
    try {
      const response = await api.fetch("GET", `${CALIBRATION}/frames/${id}/download`, { signal: reading.signal });
      const { cards, sample } = await readFits(response.body, { sample: true });
      replace(provenance, cards.map((card) => card.text.trimEnd()).join("\n"));
      const histogram = histogramOf(sample);
      if (!histogram) {
        replace(histogramNote, "The image has no finite pixel values.");
        return;
      }
      drawHistogram(canvas, histogram);
      const sampled = histogram.stride > 1 ? ` (1 in ${histogram.stride} sampled)` : "";
      replace(histogramNote, `${histogram.total.toLocaleString("en")} pixels${sampled} from ` +
        `${formatNumber(histogram.low, 4)} to ${formatNumber(histogram.high, 4)}; ${histogram.below} below and ` +
        `${histogram.above} above that range. Counts on a log scale.`);
    } catch (error) {
      if (reading.signal.aborted) return;
      replace(provenance, `Could not read the file: ${errorText(error)}`);
      replace(histogramNote, "");
    }
  })();
}
