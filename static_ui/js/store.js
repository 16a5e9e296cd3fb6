// Tab-local state. The API key lives in sessionStorage only: it is gone when the tab
// closes, is never written to localStorage or cookies, and is sent only to this origin.

const KEY = "agcluster.apiKey";
const TOKEN = "agcluster.token";
const SESSIONS = "agcluster.sessions";
const listeners = new Set();

function read(name) {
  try {
    return sessionStorage.getItem(name);
  } catch {
    return null;
  }
}

function write(name, value) {
  try {
    if (value === null) sessionStorage.removeItem(name);
    else sessionStorage.setItem(name, value);
  } catch {
    /* storage disabled: the key then lives for this page only */
  }
}

let memoryKey = null;

export function getKey() {
  return read(KEY) || memoryKey || "";
}

export function setKey(value) {
  const key = (value || "").trim();
  memoryKey = key || null;
  write(KEY, key || null);
  for (const fn of listeners) fn(key);
}

let memoryToken = null;

/** The AgCluster account token (AUTH_MODE=token only), tab-local like the key. */
export function getToken() {
  return read(TOKEN) || memoryToken || "";
}

export function setToken(value) {
  const token = (value || "").trim();
  memoryToken = token || null;
  write(TOKEN, token || null);
  for (const fn of listeners) fn(getKey());
}

export function onKeyChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function maskKey(key) {
  if (!key) return "";
  return key.length <= 8 ? "••••" : `${key.slice(0, 7)}…${key.slice(-4)}`;
}

/** Sessions launched from this tab: the ones whose details this tab's key can open. */
export function knownSessions() {
  try {
    return JSON.parse(read(SESSIONS) || "[]");
  } catch {
    return [];
  }
}

export function rememberSession(id) {
  const ids = knownSessions().filter((x) => x !== id);
  ids.unshift(id);
  write(SESSIONS, JSON.stringify(ids.slice(0, 200)));
}

export function forgetSession(id) {
  write(SESSIONS, JSON.stringify(knownSessions().filter((x) => x !== id)));
}
