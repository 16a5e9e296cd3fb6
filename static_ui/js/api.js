// The REST API: JSON calls, the chat event stream (fetch + ReadableStream, because chat is
// a POST with an Authorization header, which EventSource cannot send) and XHR uploads
// (the only browser API that reports upload progress).

import { getKey, getToken } from "./store.js";

// AUTH_MODE=none: the Anthropic key is the Bearer. AUTH_MODE=token: the AgCluster token is
// the Bearer and the key travels in X-Anthropic-Api-Key.
let authMode = "none";
export function setAuthMode(mode) {
  authMode = mode === "token" ? "token" : "none";
}
export function tokenMode() {
  return authMode === "token";
}

// Told when the server stops accepting this tab's AgCluster token (revoked, or a new server).
const unauthorizedListeners = new Set();
export function onUnauthorized(fn) {
  unauthorizedListeners.add(fn);
}

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

export function authHeaders(key) {
  const k = key === undefined ? getKey() : key;
  if (authMode === "token") {
    const headers = {};
    const token = getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (k) headers["X-Anthropic-Api-Key"] = k;
    return headers;
  }
  return k ? { Authorization: `Bearer ${k}` } : {};
}

async function errorFrom(resp) {
  let body = null;
  try {
    body = await resp.json();
  } catch {
    /* not JSON */
  }
  const err = body && body.error;
  if (err) return new ApiError(resp.status, err.code || "error", err.message || resp.statusText, err.details);
  return new ApiError(resp.status, `http_${resp.status}`, `${resp.status} ${resp.statusText || "error"}`);
}

/** fetch a route; JSON in and out. `raw: true` returns the Response (for blobs). */
export async function api(path, { method = "GET", body, key, headers = {}, signal, raw = false } = {}) {
  const init = { method, headers: { Accept: "application/json", ...authHeaders(key), ...headers }, signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (exc) {
    if (exc.name === "AbortError") throw exc;
    throw new ApiError(0, "network", "Cannot reach the AgCluster server. Check that it is running.");
  }
  if (!resp.ok) {
    const err = await errorFrom(resp);
    // /api/me is how the router checks a token itself; any other 401 means it stopped working.
    if (resp.status === 401 && authMode === "token" && path !== "/api/me") for (const fn of unauthorizedListeners) fn(err);
    throw err;
  }
  if (raw) return resp;
  if (resp.status === 204) return null;
  return resp.json();
}

export const sessionPath = (id) => `/api/agents/sessions/${encodeURIComponent(id)}`;
export const filesPath = (id, path = "") =>
  `/api/files/${encodeURIComponent(id)}${path ? `/${path.split("/").map(encodeURIComponent).join("/")}` : ""}`;

/**
 * Parse SSE frames from a fetch body. Calls onEvent(data) for each `data:` JSON object.
 * Resolves when the server closes the stream; rejects on a network error or abort.
 */
export async function readEventStream(resp, onEvent) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let match;
    while ((match = buffer.match(/\r?\n\r?\n/))) {
      const frame = buffer.slice(0, match.index);
      buffer = buffer.slice(match.index + match[0].length);
      const data = frame
        .split(/\r?\n/)
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      if (!data) continue; // keep-alive comment
      let event;
      try {
        event = JSON.parse(data);
      } catch {
        continue;
      }
      onEvent(event);
    }
  }
}

/**
 * Start a turn (message) or resume one (lastEventId), streaming events to onEvent.
 * Resolves with nothing when the stream ends; the caller checks whether `done` was seen.
 */
export async function chatStream(sessionId, { message, lastEventId, signal, onEvent }) {
  const headers = { Accept: "text/event-stream", ...authHeaders() };
  const init = { method: "POST", headers, signal };
  if (lastEventId !== undefined && lastEventId !== null) {
    headers["Last-Event-ID"] = String(lastEventId);
  } else {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify({ message });
  }
  let resp;
  try {
    resp = await fetch(`/api/agents/${encodeURIComponent(sessionId)}/chat`, init);
  } catch (exc) {
    if (exc.name === "AbortError") throw exc;
    throw new ApiError(0, "network", "Lost the connection to the server.");
  }
  if (!resp.ok) throw await errorFrom(resp);
  await readEventStream(resp, onEvent);
}

/** Upload one file with progress; resolves with the JSON body, rejects with ApiError. */
export function uploadFile(sessionId, file, { targetPath = "", overwrite = false, onProgress, signal } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const query = new URLSearchParams({ target_path: targetPath, overwrite: overwrite ? "true" : "false" });
    xhr.open("POST", `${filesPath(sessionId)}/upload?${query}`);
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.responseType = "json";
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && onProgress) onProgress(e.loaded, e.total);
    };
    xhr.onload = () => {
      const body = xhr.response;
      if (xhr.status >= 200 && xhr.status < 300) return resolve(body);
      const err = body && body.error;
      reject(new ApiError(xhr.status, err ? err.code : `http_${xhr.status}`,
        err ? err.message : `Upload failed (${xhr.status})`, err ? err.details : {}));
    };
    xhr.onerror = () => reject(new ApiError(0, "network", "The upload was interrupted (network error)."));
    xhr.onabort = () => reject(new ApiError(0, "aborted", "Upload cancelled."));
    if (signal) signal.addEventListener("abort", () => xhr.abort(), { once: true });
    const form = new FormData();
    form.append("files", file, file.name);
    xhr.send(form);
  });
}

/** Save a Response body as a file (downloads need the Authorization header, so no plain links). */
export async function saveResponse(resp, fallbackName) {
  const blob = await resp.blob();
  const name = filenameFrom(resp.headers.get("Content-Disposition")) || fallbackName;
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return name;
}

export function filenameFrom(disposition) {
  if (!disposition) return "";
  const star = disposition.match(/filename\*=UTF-8''([^;]+)/i);
  if (star) {
    try {
      return decodeURIComponent(star[1]);
    } catch {
      /* fall through */
    }
  }
  const plain = disposition.match(/filename="?([^";]+)"?/i);
  return plain ? plain[1] : "";
}
