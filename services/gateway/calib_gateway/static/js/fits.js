// Reading a FITS primary HDU from a download stream: the header cards, and optionally
// every pixel value in one pass (for a histogram) without holding the image in memory.

const BLOCK = 2880;
const CARD = 80;

/** One header card as {keyword, value, text}; value is a number, string, boolean or null. */
function parseCard(text) {
  const keyword = text.slice(0, 8).trim();
  if (text.slice(8, 10) !== "= ") return { keyword, value: null, text };
  const rest = text.slice(10).trim();
  let value;
  if (rest.startsWith("'")) {
    const match = rest.match(/^'((?:[^']|'')*)'/);
    value = match ? match[1].replace(/''/g, "'").trimEnd() : rest;
  } else {
    const raw = rest.split("/")[0].trim();
    if (raw === "T" || raw === "F") value = raw === "T";
    else value = raw === "" ? null : Number(raw.replace(/D/i, "E"));
  }
  return { keyword, value, text };
}

class ByteQueue {
  constructor(reader) {
    this.reader = reader;
    this.chunks = [];
    this.length = 0;
    this.done = false;
  }

  /** Wait until `count` bytes are buffered (or the stream ended). */
  async fill(count) {
    while (this.length < count && !this.done) {
      const { value, done } = await this.reader.read();
      if (done) this.done = true;
      else {
        this.chunks.push(value);
        this.length += value.length;
      }
    }
  }

  /** Take up to `count` bytes as one Uint8Array. */
  take(count) {
    const size = Math.min(count, this.length);
    const out = new Uint8Array(size);
    let offset = 0;
    while (offset < size) {
      const chunk = this.chunks[0];
      const part = Math.min(chunk.length, size - offset);
      out.set(chunk.subarray(0, part), offset);
      offset += part;
      if (part === chunk.length) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(part);
    }
    this.length -= size;
    return out;
  }
}

const READERS = {
  8: (view, i) => view.getUint8(i),
  16: (view, i) => view.getInt16(i),
  32: (view, i) => view.getInt32(i),
  [-32]: (view, i) => view.getFloat32(i),
  [-64]: (view, i) => view.getFloat64(i),
};

/**
 * Read the header of the FITS stream `body` and, with `sample`, a PixelSample of its
 * physical pixel values (BSCALE/BZERO applied), in one pass without keeping the image.
 * Returns {cards, header, sample}; header maps keyword → value.
 */
export async function readFits(body, { sample: wanted = false } = {}) {
  const reader = body.getReader();
  const queue = new ByteQueue(reader);
  const cards = [];
  let ended = false;
  const decoder = new TextDecoder("ascii");
  while (!ended) {
    await queue.fill(BLOCK);
    if (queue.length < BLOCK) throw new Error("not a FITS file: the header has no END card");
    const block = decoder.decode(queue.take(BLOCK));
    for (let offset = 0; offset < BLOCK && !ended; offset += CARD) {
      const card = parseCard(block.slice(offset, offset + CARD));
      if (card.keyword === "END") ended = true;
      else if (card.text.trim()) cards.push(card);
    }
  }
  if (cards.length === 0 || cards[0].keyword !== "SIMPLE") throw new Error("not a FITS file");
  const header = Object.fromEntries(cards.filter((c) => c.value !== null).map((c) => [c.keyword, c.value]));
  if (!wanted) {
    await reader.cancel();
    return { cards, header, sample: null };
  }
  const read = READERS[header.BITPIX];
  if (!read || header.NAXIS < 1) throw new Error(`cannot read pixels with BITPIX ${header.BITPIX}`);
  const size = Math.abs(header.BITPIX) / 8;
  let pixels = 1;
  for (let axis = 1; axis <= header.NAXIS; axis += 1) pixels *= header[`NAXIS${axis}`];
  const scale = header.BSCALE ?? 1;
  const zero = header.BZERO ?? 0;
  const sample = new PixelSample(pixels);
  const step = 1 << 16; // pixels per chunk
  for (let done = 0; done < pixels;) {
    const count = Math.min(step, pixels - done);
    await queue.fill(count * size);
    const bytes = queue.take(count * size);
    if (bytes.length < count * size) throw new Error("the FITS file ends before its last pixel");
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const values = new Float64Array(count);
    for (let i = 0; i < count; i += 1) values[i] = read(view, i * size) * scale + zero;
    sample.add(values);
    done += count;
  }
  await reader.cancel();
  return { cards, header, sample };
}

/** Every `stride`-th finite pixel value, at most `limit` of them (the histogram's input). */
export class PixelSample {
  constructor(pixels, limit = 2_000_000) {
    this.stride = Math.max(1, Math.ceil(pixels / limit));
    this.values = new Float32Array(Math.ceil(pixels / this.stride));
    this.length = 0;
    this.seen = 0;
  }

  add(values) {
    for (const value of values) {
      if (this.seen % this.stride === 0 && Number.isFinite(value)) this.values[this.length++] = value;
      this.seen += 1;
    }
  }
}

const SPREAD = 8; // histogram range: median ± this many robust standard deviations, within min–max

/**
 * A histogram of the sample in `bins` equal bins over median ± 8 robust σ (1.4826 × MAD)
 * clipped to the sample's range, so a few hot pixels do not squash the peak into one bin;
 * values outside are counted in `below` / `above`.
 */
export function histogramOf(sample, bins = 128) {
  const sorted = sample.values.slice(0, sample.length).sort();
  const total = sorted.length;
  if (!total) return null;
  const median = sorted[Math.floor(total / 2)];
  const deviations = sorted.map((v) => Math.abs(v - median)).sort();
  const spread = 1.4826 * deviations[Math.floor(total / 2)];
  let low = Math.max(sorted[0], median - SPREAD * spread);
  let high = Math.min(sorted[total - 1], median + SPREAD * spread);
  if (!(high > low)) [low, high] = [median - 0.5, median + 0.5];
  const counts = new Float64Array(bins);
  let below = 0;
  let above = 0;
  const width = (high - low) / bins;
  for (const value of sorted) {
    if (value < low) below += 1;
    else if (value > high) above += 1;
    else counts[Math.min(bins - 1, Math.floor((value - low) / width))] += 1;
  }
  return { low, high, counts, below, above, total, stride: sample.stride };
}
