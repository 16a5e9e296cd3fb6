// The launch page: API key, preset cards, details on demand, MCP credentials, one-click launch.

import { me } from "../account.js";
import { api, tokenMode } from "../api.js";
import { button, fill, h, icon, spinner } from "../dom.js";
import * as fmt from "../format.js";
import { launched } from "../launching.js";
import { getKey, onKeyChange, setKey } from "../store.js";
import { askForCredentials } from "../mcp.js";
import { emptyState, errorBox, KEY_NOTE, modal, toast } from "../ui.js";

class LaunchPage {
  constructor(root, { meta, navigate }) {
    this.ac = new AbortController();
    this.meta = meta;
    this.navigate = navigate;
    this.busy = false; // one launch at a time
    this.keyField = keyCard();
    this.grid = h("div", { class: "preset-grid", "aria-busy": "true" }, skeletons(4));
    this.customGrid = h("div", { class: "preset-grid" });
    this.customSection = h("section", { class: "section", hidden: true, "aria-labelledby": "custom-h" },
      h("div", { class: "section-head" }, h("h2", { id: "custom-h", text: "Your configurations" }),
        h("a", { class: "btn btn-ghost btn-sm", href: "#/builder" }, icon("plus"), h("span", { text: "New configuration" }))),
      this.customGrid);
    root.append(h("section", { class: "page" },
      h("div", { class: "page-head" },
        h("div", {},
          h("h1", { text: "Launch an agent" }),
          h("p", { class: "lead", text: "Each session runs in its own isolated machine with a private /workspace. Pick a preset, or build your own configuration." })),
        h("a", { class: "btn", href: "#/sessions" }, icon("list"), h("span", { text: "Your sessions" }))),
      this.keyField.el,
      h("section", { class: "section", "aria-labelledby": "presets-h" },
        h("div", { class: "section-head" }, h("h2", { id: "presets-h", text: "Presets" })),
        this.grid),
      this.customSection));
    this.load();
  }

  async load() {
    let data;
    try {
      data = await api("/api/configs/", { signal: this.ac.signal });
    } catch (err) {
      if (err.name === "AbortError") return;
      fill(this.grid, errorBox(err, { title: "Could not load configurations" }));
      this.grid.removeAttribute("aria-busy");
      return;
    }
    // Presets are the YAML files the server ships; everything else was saved from the builder.
    const presetIds = new Set(this.meta.preset_ids || []);
    const configs = data.configs || [];
    const isPreset = (c) => (typeof c.preset === "boolean" ? c.preset : presetIds.size === 0 || presetIds.has(c.id));
    const custom = configs.filter((c) => !isPreset(c));
    const presets = configs.filter((c) => !custom.includes(c));
    fill(this.grid, presets.length ? presets.map((c) => this.card(c, false)) :
      emptyState({ iconName: "layers", title: "No presets", text: "Add YAML files under presets/ or build a configuration." }));
    this.grid.removeAttribute("aria-busy");
    this.customSection.hidden = custom.length === 0;
    fill(this.customGrid, custom.map((c) => this.card(c, true)));
  }

  card(config, custom) {
    const status = h("div", { class: "card-status", "aria-live": "polite" });
    const launchBtn = button("Launch", { icon: "rocket", cls: "btn btn-primary", "data-action": "launch" });
    const detailsBtn = button("Details", { icon: "eye", cls: "btn", "aria-haspopup": "dialog" });
    const tools = config.allowed_tools || [];
    const shown = tools.slice(0, 7);
    const limits = config.resource_limits || {};
    const badges = [
      custom ? badge("Custom", "sliders", "badge-neutral") : null,
      custom && config.shared ? badge("Shared", "users", "badge-neutral", "Every user of this server can launch it") : null,
      config.has_mcp_servers ? badge(`MCP · ${Object.keys(config.mcp_servers || {}).join(", ")}`, "plug", "badge-mcp") : null,
      config.has_sub_agents ? badge("Sub-agents", "bot", "badge-agents") : null,
      config.network === "internet" ? badge("Internet", "globe", "badge-neutral", "Outbound HTTP(S) through the egress proxy") : null,
      config.image ? badge("Custom image", "layers", "badge-neutral", config.image) : null,
    ];
    const el = h("article", { class: "preset-card card", "data-config-id": config.id, "aria-labelledby": `pc-${config.id}` },
      h("header", { class: "preset-head" },
        h("div", { class: "preset-icon", "aria-hidden": "true" }, icon(presetIcon(config), { size: 20 })),
        h("div", { class: "preset-title" },
          h("h3", { id: `pc-${config.id}`, text: config.name }),
          h("code", { class: "preset-id", text: config.id }))),
      h("p", { class: "preset-desc", text: config.description || "No description." }),
      h("div", { class: "badges" }, badges),
      h("ul", { class: "chips", "aria-label": "Tools" },
        shown.map((t) => h("li", { class: "chip", text: t })),
        tools.length > shown.length ? h("li", { class: "chip chip-more", text: `+${tools.length - shown.length}` }) : null),
      h("dl", { class: "resources" },
        resource("cpu", "CPU", fmt.cpus(limits.cpu_quota) || "default CPU"),
        resource("layers", "Memory", `${fmt.size(limits.memory_limit) || "default"} RAM`),
        resource("archive", "Disk", `${fmt.size(limits.storage_limit) || "default"} disk`)),
      status,
      h("footer", { class: "preset-foot" }, custom && tokenMode() && me().admin ? this.shareButton(config) : null, detailsBtn, launchBtn));
    detailsBtn.addEventListener("click", () => showDetails(config, () => this.launch(config, launchBtn, status), custom));
    launchBtn.addEventListener("click", () => this.launch(config, launchBtn, status));
    return el;
  }

  /** Admins share a member's config with everyone (or take the share back). */
  shareButton(config) {
    const label = config.shared ? "Stop sharing" : "Share";
    return button(label, { icon: "users", cls: "btn btn-ghost", "data-action": "share", onClick: async (e) => {
      const btn = e.currentTarget;
      btn.disabled = true;
      try {
        await api(`/api/configs/${encodeURIComponent(config.id)}/share`, { method: "POST", body: { shared: !config.shared } });
        toast(config.shared ? `${config.name} is private to its owner again` : `${config.name} is shared with every user`, { type: "success" });
        this.load();
      } catch (err) {
        toast(err.message, { type: "error" });
        btn.disabled = false;
      }
    } });
  }

  async launch(config, btn, status) {
    if (this.busy) return;
    const key = getKey();
    if (!key) {
      this.keyField.error("Enter your Anthropic API key to launch an agent.");
      return;
    }
    let mcpEnv = {};
    if (config.has_mcp_servers) {
      let full;
      try {
        full = await api(`/api/configs/${encodeURIComponent(config.id)}`, { signal: this.ac.signal });
      } catch (err) {
        if (err.name !== "AbortError") fill(status, errorBox(err, { title: "Could not read the configuration" }));
        return;
      }
      mcpEnv = await askForCredentials(full);
      if (mcpEnv === null) return;
    }
    this.busy = true;
    const buttons = () => document.querySelectorAll('[data-action="launch"]');
    buttons().forEach((b) => { b.disabled = true; });
    btn.classList.add("is-busy");
    fill(btn, spinner(), h("span", { text: "Starting…" }));
    const started = Date.now();
    const elapsed = h("span", { class: "elapsed", text: "0 s" });
    fill(status, h("div", { class: "progress-line" }, spinner(),
      h("span", { text: "Starting an isolated machine and the agent" }), elapsed),
      h("div", { class: "progress-bar indeterminate", role: "progressbar", "aria-label": "Launching" }, h("span")));
    const timer = setInterval(() => { elapsed.textContent = `${Math.round((Date.now() - started) / 1000)} s`; }, 500);
    try {
      const body = { api_key: key, config_id: config.id };
      if (Object.keys(mcpEnv).length) body.mcp_env = mcpEnv;
      const result = await api("/api/agents/launch", { method: "POST", body, key: "", signal: this.ac.signal });
      launched(result, { name: config.name, navigate: this.navigate });
    } catch (err) {
      if (err.name === "AbortError") return;
      fill(status, errorBox(err, { title: launchErrorTitle(err) }));
    } finally {
      clearInterval(timer);
      this.busy = false;
      buttons().forEach((b) => { b.disabled = false; });
      btn.classList.remove("is-busy");
      fill(btn, icon("rocket"), h("span", { text: "Launch" }));
    }
  }

  destroy() {
    this.ac.abort();
    this.keyField.off();
  }
}

export function mount(root, _params, context) {
  const page = new LaunchPage(root, context);
  return () => page.destroy();
}

function launchErrorTitle(err) {
  if (err.status === 400) return "The launch request was rejected";
  if (err.status === 401 || err.status === 403) return "The key was not accepted";
  if (err.status === 503 || err.status === 502) return "Could not start a machine";
  if (err.status === 0) return "Server unreachable";
  return "Launch failed";
}

function keyCard() {
  const id = "api-key-input";
  const input = h("input", { id, type: "password", class: "input key-input", placeholder: "sk-ant-…", autocomplete: "off",
    spellcheck: "false", value: getKey(), "aria-describedby": "key-note key-error" });
  const toggle = button("Show", { cls: "btn btn-sm", "aria-controls": id, "aria-pressed": "false" });
  const clearBtn = button("Forget", { cls: "btn btn-sm btn-ghost" });
  const err = h("p", { id: "key-error", class: "field-error", hidden: true });
  const saved = h("span", { class: "key-saved", "aria-live": "polite" });
  toggle.addEventListener("click", () => {
    const show = input.type === "password";
    input.type = show ? "text" : "password";
    toggle.querySelector("span").textContent = show ? "Hide" : "Show";
    toggle.setAttribute("aria-pressed", String(show));
  });
  clearBtn.addEventListener("click", () => {
    input.value = "";
    setKey("");
    input.focus();
  });
  input.addEventListener("input", () => {
    setKey(input.value);
    err.hidden = true;
    input.removeAttribute("aria-invalid");
  });
  const off = onKeyChange((k) => {
    if (document.activeElement !== input) input.value = k;
    saved.textContent = k ? "Saved for this tab" : "";
  });
  saved.textContent = getKey() ? "Saved for this tab" : "";
  const el = h("section", { class: "card key-card", "aria-labelledby": "key-h" },
    h("div", { class: "key-card-icon", "aria-hidden": "true" }, icon("key", { size: 20 })),
    h("div", { class: "key-card-body" },
      h("label", { id: "key-h", for: id, class: "key-label", text: "Anthropic API key" }),
      h("form", { class: "key-row", onsubmit: (e) => e.preventDefault() },
        h("input", { type: "text", name: "username", autocomplete: "username", value: "anthropic", hidden: true, "aria-hidden": "true" }),
        input, toggle, clearBtn, saved),
      err,
      h("p", { id: "key-note", class: "note" }, icon("lock"), h("span", { text: KEY_NOTE }))));
  return {
    el,
    error(message) {
      err.textContent = message;
      err.hidden = false;
      input.setAttribute("aria-invalid", "true");
      input.focus();
      el.scrollIntoView({ block: "center" });
    },
    off,
  };
}

function badge(text, iconName, cls, title) {
  return h("span", { class: `badge ${cls}`, title: title || text }, icon(iconName, { size: 12 }), h("span", { text }));
}

function resource(iconName, label, value) {
  return h("div", { class: "resource", title: label }, icon(iconName, { size: 14 }), h("dt", { class: "sr-only", text: label }), h("dd", { text: value }));
}

export function presetIcon(config) {
  const tools = config.allowed_tools || [];
  if (config.has_sub_agents || (config.agents && Object.keys(config.agents).length)) return "bot";
  if (config.has_mcp_servers || (config.mcp_servers && Object.keys(config.mcp_servers).length)) return "plug";
  if (tools.includes("WebSearch") || tools.includes("WebFetch")) return "globe";
  if (tools.includes("NotebookEdit")) return "layers";
  if (tools.includes("Bash")) return "terminal";
  return "sparkles";
}

function skeletons(n) {
  return Array.from({ length: n }, () => h("div", { class: "preset-card card skeleton", "aria-hidden": "true" },
    h("div", { class: "sk sk-title" }), h("div", { class: "sk sk-line" }), h("div", { class: "sk sk-line short" })));
}

async function showDetails(summary, onLaunch, custom) {
  const body = h("div", { class: "details", "aria-busy": "true" }, h("p", { class: "muted" }, spinner(), " Loading…"));
  const launchBtn = button("Launch", { icon: "rocket", cls: "btn btn-primary", onClick: () => { m.close(); onLaunch(); } });
  const customise = h("a", { class: "btn", href: `#/builder/${summary.id}` }, icon("sliders"), h("span", { text: custom ? "Edit in builder" : "Customise" }));
  customise.addEventListener("click", () => m.close());
  const m = modal({ title: summary.name, content: body, actions: [customise, launchBtn], wide: true });
  try {
    const c = await api(`/api/configs/${encodeURIComponent(summary.id)}`);
    fill(body, configDetails(c));
  } catch (err) {
    fill(body, errorBox(err));
  }
  body.removeAttribute("aria-busy");
}

export function configDetails(c) {
  const rows = [];
  const row = (label, value) => {
    if (value === null || value === undefined || value === "" || (Array.isArray(value) && !value.length)) return;
    rows.push(h("div", { class: "detail-row" }, h("dt", { text: label }), h("dd", {}, value)));
  };
  const chips = (list) => h("ul", { class: "chips" }, list.map((t) => h("li", { class: "chip", text: t })));
  row("Description", c.description);
  row("Allowed tools", (c.allowed_tools || []).length ? chips(c.allowed_tools) : null);
  row("Disallowed tools", (c.disallowed_tools || []).length ? chips(c.disallowed_tools) : null);
  row("Permission mode", c.permission_mode);
  row("Model", c.model || "default");
  row("Max turns", c.max_turns ? String(c.max_turns) : null);
  row("Budget", c.max_budget_usd ? fmt.cost(c.max_budget_usd) : null);
  row("Image", c.image);
  const limits = c.resource_limits || {};
  row("Resources", [fmt.cpus(limits.cpu_quota), fmt.size(limits.memory_limit) && `${fmt.size(limits.memory_limit)} memory`,
    fmt.size(limits.storage_limit) && `${fmt.size(limits.storage_limit)} disk`].filter(Boolean).join(" · ") || "defaults");
  row("Environment", Object.keys(c.env || {}).length ? chips(Object.keys(c.env)) : null);
  let prompt = null;
  if (typeof c.system_prompt === "string") prompt = c.system_prompt;
  else if (c.system_prompt && c.system_prompt.preset) prompt = `[Claude Code system prompt]\n\n${c.system_prompt.append || ""}`;
  const parts = [h("dl", { class: "detail-list" }, rows)];
  if (prompt) parts.push(h("h3", { class: "detail-h", text: "System prompt" }), h("pre", { class: "prompt-box", text: prompt.trim() }));
  const servers = Object.entries(c.mcp_servers || {});
  if (servers.length) {
    parts.push(h("h3", { class: "detail-h" }, icon("plug"), " MCP servers"));
    parts.push(h("ul", { class: "detail-cards" }, servers.map(([name, s]) => h("li", { class: "detail-card" },
      h("strong", { text: name }), h("span", { class: "badge badge-neutral", text: s.type || "stdio" }),
      h("code", { class: "block-code", text: s.url || [s.command, ...(s.args || [])].join(" ") }),
      Object.keys({ ...(s.env || {}), ...(s.headers || {}) }).length
        ? h("p", { class: "muted", text: `Credentials: ${Object.keys({ ...(s.env || {}), ...(s.headers || {}) }).join(", ")}` }) : null))));
  }
  const agents = Object.entries(c.agents || {});
  if (agents.length) {
    parts.push(h("h3", { class: "detail-h" }, icon("bot"), " Sub-agents"));
    parts.push(h("ul", { class: "detail-cards" }, agents.map(([name, a]) => h("li", { class: "detail-card" },
      h("strong", { text: name }), a.model ? h("span", { class: "badge badge-neutral", text: a.model }) : null,
      h("p", { text: a.description }), (a.tools || []).length ? chips(a.tools) : null))));
  }
  return parts;
}
