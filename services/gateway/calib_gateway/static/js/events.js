// Server-sent events read through fetch(): EventSource cannot send the Authorization
// header, and a token in the URL would end up in logs. Reconnects after a dropped stream.

const RETRY_MS = 2000;

function parseBlock(block) {
  let name = "message";
  const data = [];
  for (const line of block.split(/\r?\n/)) {
    if (line.startsWith(":")) continue; // comment / keep-alive
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  const text = data.join("\n");
  try {
    return { name, data: JSON.parse(text) };
  } catch {
    return { name, data: text };
  }
}

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

/**
 * Call `onEvent({name, data})` for each event of `path` until `signal` aborts.
 * `onState("live" | "reconnecting" | error)` reports the connection; a 4xx answer
 * (no access, no such stream) stops for good.
 */
export async function streamEvents(api, path, { signal, onEvent, onState }) {
  while (!signal.aborted) {
    try {
      const response = await api.fetch("GET", path, { signal, accept: "text/event-stream" });
      onState("live");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
          const event = parseBlock(buffer.slice(0, end));
          buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
          if (event) onEvent(event);
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      if (error.status >= 400 && error.status < 500) {
        onState(error);
        return;
      }
    }
    if (signal.aborted) return;
    onState("reconnecting");
    await pause(RETRY_MS, signal);
  }
}
