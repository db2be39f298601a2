// The API client: the key from sessionStorage as a Bearer token, errors as ApiError.

const KEY = "ai-agents-console-key";

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set key(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
};

function headers(extra = {}) {
  return { Authorization: `Bearer ${session.key}`, ...extra };
}

async function failure(response) {
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  const error = body && (body.error || body);
  const message = (error && error.message) || `${response.status} ${response.statusText}`;
  const code = (error && (error.code || error.type)) || "http_error";
  if (response.status === 401) window.dispatchEvent(new Event("console:unauthorized"));
  return new ApiError(response.status, code, message, error && error.details);
}

function query(params) {
  const usp = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") usp.set(k, String(v));
  }
  const text = usp.toString();
  return text ? `?${text}` : "";
}

/** A JSON request to *path* (absolute, e.g. "/api/v1/agents"). */
export async function request(method, path, { body, params } = {}) {
  const init = { method, headers: headers() };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path + query(params), init);
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

export const v1 = {
  get: (path, params) => request("GET", `/api/v1${path}`, { params }),
  post: (path, body) => request("POST", `/api/v1${path}`, { body }),
  patch: (path, body) => request("PATCH", `/api/v1${path}`, { body }),
  delete: (path) => request("DELETE", `/api/v1${path}`),
};

/** Every page of a cursor listing (``data``, ``next_cursor``), up to *max* items. */
export async function all(path, params = {}, max = 500) {
  const items = [];
  let cursor = null;
  do {
    const page = await v1.get(path, { ...params, limit: 100, cursor });
    items.push(...page.data);
    cursor = page.has_more ? page.next_cursor : null;
  } while (cursor && items.length < max);
  return items;
}

/** Upload *file* to the OpenAI-compatible files endpoint (multipart). */
export async function uploadFile(file, purpose = "assistants") {
  const form = new FormData();
  form.append("purpose", purpose);
  form.append("file", file, file.name);
  const response = await fetch("/v1/files", { method: "POST", headers: headers(), body: form });
  if (!response.ok) throw await failure(response);
  return response.json();
}

export async function fileText(fileId, maxChars = 4000) {
  const response = await fetch(`/v1/files/${encodeURIComponent(fileId)}/content`, { headers: headers() });
  if (!response.ok) throw await failure(response);
  const text = await response.text();
  return text.length > maxChars ? text.slice(0, maxChars) + "\n…" : text;
}

/**
 * POST *path* with ``stream: true`` and call ``onEvent(name, data)`` for each Server-Sent
 * Event (fetch, not EventSource: it must send the Authorization header).
 */
export async function stream(path, body, onEvent) {
  const response = await fetch(`/api/v1${path}`, {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify({ ...body, stream: true }),
  });
  if (!response.ok) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trim());
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}
