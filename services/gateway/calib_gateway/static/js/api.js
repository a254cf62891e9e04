// The public JSON API (SPEC §8), with the bearer token on every request.

export const CALIBRATION = "/api/v1/calibration";

/** An error answer of the API: `{"error": code, "detail": message}` plus its HTTP status. */
export class ApiError extends Error {
  constructor(status, body) {
    const detail = (body && body.detail) || `HTTP ${status}`;
    super(detail);
    this.status = status;
    this.code = (body && body.error) || "error";
    this.detail = detail;
    this.field = body && body.field; // settings: the refused field
    this.body = body; // e.g. /health's full report with its 503
  }
}

function withQuery(path, query) {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(name, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON (a proxy's page, an empty body): the status says enough
  }
  return new ApiError(response.status, body);
}

export class Api {
  constructor(token) {
    this.token = token;
    this.onUnauthorized = null; // set once signed in: a 401 then means the token was revoked
  }

  async fetch(method, path, { query, json, body, signal, accept } = {}) {
    const headers = { Authorization: `Bearer ${this.token}` };
    if (accept) headers.Accept = accept;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    }
    const response = await fetch(withQuery(path, query), { method, headers, body, signal });
    if (!response.ok) {
      const error = await errorOf(response);
      if (response.status === 401 && this.onUnauthorized) this.onUnauthorized(error);
      throw error;
    }
    return response;
  }

  /** A JSON answer (null for 204). */
  async request(method, path, options = {}) {
    const response = await this.fetch(method, path, options);
    if (response.status === 204) return null;
    return response.json();
  }

  get(path, query) {
    return this.request("GET", path, { query });
  }

  /** The body as a Blob (images, FITS downloads). */
  async blob(path) {
    return (await this.fetch("GET", path)).blob();
  }
}
