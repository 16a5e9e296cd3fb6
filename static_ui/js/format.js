// Human-readable numbers, sizes, durations and times.

export function bytes(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "";
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value >= 10 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}

export function tokens(n) {
  if (!n) return "0";
  if (n < 1000) return String(n);
  if (n < 1_000_000) return `${(n / 1000).toFixed(n < 10_000 ? 1 : 0)}k`;
  return `${(n / 1_000_000).toFixed(2)}M`;
}

export function cost(usd) {
  if (!usd) return "$0.00";
  if (usd < 0.01) return `$${usd.toFixed(4)}`;
  return `$${usd.toFixed(usd < 1 ? 3 : 2)}`;
}

export function duration(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** "just now", "5 min ago", "3 h ago", "2 d ago" for a unix timestamp in seconds. */
export function ago(ts, now = Date.now() / 1000) {
  if (!ts) return "";
  const s = Math.max(0, now - ts);
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** An age without "ago": "4 min", "2 h". */
export function age(ts, now = Date.now() / 1000) {
  if (!ts) return "";
  const s = Math.max(0, now - ts);
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400) return `${(s / 3600).toFixed(s < 36000 ? 1 : 0)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

export function dateTime(ts) {
  if (!ts) return "";
  return new Date(ts * 1000).toLocaleString();
}

export function cpus(quota) {
  if (!quota) return "";
  const n = quota / 100_000;
  return `${Number.isInteger(n) ? n : n.toFixed(1)} vCPU`;
}

/** "4g" → "4 GB", "512m" → "512 MB" */
export function size(spec) {
  if (spec === null || spec === undefined || spec === "") return "";
  const m = String(spec).trim().match(/^(\d+(?:\.\d+)?)\s*([kmgt]?)b?$/i);
  if (!m) return String(spec);
  const unit = { "": "B", k: "KB", m: "MB", g: "GB", t: "TB" }[m[2].toLowerCase()];
  return `${m[1]} ${unit}`;
}

export function plural(n, word, many = `${word}s`) {
  return `${n} ${n === 1 ? word : many}`;
}

export function shortId(id) {
  return id ? String(id).slice(0, 8) : "";
}

/** Workspace-relative form of an absolute path the agent used. */
export function workspacePath(path) {
  if (!path) return "";
  const p = String(path);
  if (p === "/workspace") return ".";
  return p.startsWith("/workspace/") ? p.slice("/workspace/".length) : p;
}
