// Building the DOM without innerHTML (API text is never parsed as HTML), and formatting.

/**
 * h("button", {class: "x", onclick: fn, disabled: true}, "text", child, [more])
 * Attributes starting with "on" become listeners; `false`/`null` attributes are left out.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (name in element && typeof value !== "string") {
      element[name] = value; // value, checked, min... as properties
    } else {
      element.setAttribute(name, value === true ? "" : value);
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

let counter = 0;
/** A page-unique id, to tie labels and descriptions to their inputs. */
export function uid(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}

export function formatDate(value) {
  if (!value) return "—";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toISOString().slice(0, 16).replace("T", " "); // headings say "(UTC)"
}

/** A date and time for a table cell: wraps between the two, never inside either. */
export function dateTime(value) {
  const [day, time] = formatDate(value).split(" ");
  return h("span", { class: "datetime" }, h("span", {}, day), time ? [" ", h("span", {}, time)] : null);
}

export function formatNumber(value, digits = 2) {
  if (value === null || value === undefined) return "—";
  if (Number.isInteger(value)) return String(value);
  return Number(value).toFixed(digits).replace(/\.?0+$/, "");
}

export function formatTemperature(value) {
  return value === null || value === undefined ? "—" : `${formatNumber(value, 1)} °C`;
}

export function formatBytes(value) {
  if (value === null || value === undefined) return "—";
  const units = ["B", "KB", "MB", "GB"];
  let size = value;
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit += 1;
  }
  return `${formatNumber(size, 1)} ${units[unit]}`;
}

/** A configuration in one line: camera · gain · offset · binning · readout · exposure · filter. */
export function describeConfiguration(item) {
  const parts = [item.camera_name];
  if (item.gain !== null && item.gain !== undefined) parts.push(`gain ${formatNumber(item.gain)}`);
  if (item.offset !== null && item.offset !== undefined) parts.push(`offset ${formatNumber(item.offset)}`);
  if (item.binning) parts.push(item.binning);
  if (item.readout_mode) parts.push(item.readout_mode);
  if (item.exposure_s !== null && item.exposure_s !== undefined) parts.push(`${formatNumber(item.exposure_s)} s`);
  if (item.filter) parts.push(`filter ${item.filter}`);
  if (item.rotation_deg !== null && item.rotation_deg !== undefined) parts.push(`rot ${formatNumber(item.rotation_deg, 1)}°`);
  return parts.filter((part) => part !== null && part !== undefined && part !== "").join(" · ");
}
