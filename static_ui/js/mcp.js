// MCP credentials asked for at launch. A server declares what `mcp_env` may fill (env keys,
// header names, ${VAR} placeholders; see control.config_schema.declared_mcp_keys). The
// dashboard asks for what has no value yet: ${VAR}s and empty env/header values. Declared
// keys that already have a value (e.g. a toolset header) are optional overrides, not asked.

import { formDialog } from "./ui.js";

const PLACEHOLDER = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** [[server, key], …] the user must supply for `config` (a full config). */
export function requiredCredentials(config) {
  const out = [];
  for (const [server, s] of Object.entries(config.mcp_servers || {})) {
    const keys = new Set();
    for (const [k, v] of Object.entries(s.env || {})) {
      if (v === null || v === undefined || v === "") keys.add(k);
      for (const m of String(v || "").matchAll(PLACEHOLDER)) keys.add(m[1]);
    }
    for (const [k, v] of Object.entries(s.headers || {})) {
      if (v === null || v === undefined || v === "") keys.add(k);
      for (const m of String(v || "").matchAll(PLACEHOLDER)) keys.add(m[1]);
    }
    for (const k of [...keys].sort()) out.push([server, k]);
  }
  return out;
}

/** Ask for the credentials; resolves with an mcp_env object ({} when none are needed) or null. */
export async function askForCredentials(config, { submitLabel = "Launch" } = {}) {
  const needed = requiredCredentials(config);
  if (!needed.length) return {};
  const values = await formDialog({
    title: `Credentials for ${config.name || "this agent"}`,
    intro: "This configuration connects to MCP servers that need credentials. They are held in the control plane's memory for this session only and never stored.",
    fields: needed.map(([server, key]) => ({ name: `${server}\u0000${key}`, label: `${server} · ${key}`, type: "password", required: true,
      placeholder: key })),
    submitLabel,
    note: "Credentials go only to this AgCluster server, which passes them to the MCP server that needs them.",
  });
  if (!values) return null;
  const env = {};
  for (const [name, value] of Object.entries(values)) {
    const [server, key] = name.split("\u0000");
    (env[server] ||= {})[key] = value;
  }
  return env;
}
