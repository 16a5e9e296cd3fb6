// The config form: a control for every field of the agent config schema
// (control/config_schema.py), built from the server's lists (/ui/meta.json), and the two
// directions between the form and a config object.

import { button, fill, h } from "../../dom.js";
import { changed, field, KeyValueList, section, ToolGrid } from "./fields.js";
import { McpServerRow, SubAgentRow } from "./rows.js";

// Suggestions only (a datalist): the server accepts any model id.
const MODEL_SUGGESTIONS = ["sonnet", "opus", "haiku", "inherit"];
const PROMPT_KINDS = [["preset", "Claude Code + additions"], ["custom", "Custom prompt"], ["none", "None"]];
const NETWORK_HELP = "relay: the model relay only, no internet. internet: outbound HTTP(S) through the filtering egress proxy.";

export class ConfigForm {
  /** `schema`: {tools, permissionModes, settingSources, networks, transports, defaults} from the server. */
  constructor(schema) {
    this.schema = schema;
    this.inputs = {}; // simple inputs by config path
    this.agents = []; // SubAgentRow
    this.servers = []; // McpServerRow
    this.promptKind = "preset";
    this.el = h("form", { class: "builder-form", novalidate: true, "aria-label": "Agent configuration" });
    this.build();
  }

  // ---------------------------------------------------------------- building
  text(name, label, { placeholder = "", help = "", required = false, type = "text", multiline = false, rows = 3, list, ...rest } = {}) {
    const id = `cfg-${name.replace(/\./g, "-")}`;
    const input = multiline
      ? h("textarea", { id, class: "input", rows: String(rows), placeholder, spellcheck: "false", "data-field": name, ...rest })
      : h("input", { id, class: "input", type, placeholder, autocomplete: "off", spellcheck: "false", "data-field": name, list, ...rest });
    this.inputs[name] = input;
    return field(label, input, { help, required, name, id });
  }

  select(name, values) {
    const input = h("select", { id: `cfg-${name}`, class: "input", "data-field": name }, values.map((v) => h("option", { value: v, text: v })));
    this.inputs[name] = input;
    return input;
  }

  build() {
    const s = this.schema;
    this.modelList = h("datalist", { id: "model-options" }, MODEL_SUGGESTIONS.map((m) => h("option", { value: m })));
    const permission = this.select("permission_mode", s.permissionModes);
    const network = this.select("network", s.networks);

    this.promptSeg = h("div", { class: "seg", role: "radiogroup", "aria-label": "System prompt" },
      PROMPT_KINDS.map(([value, label]) => h("button", { type: "button", role: "radio", class: "seg-btn", "data-value": value,
        "aria-checked": String(value === this.promptKind), text: label, onclick: () => this.setPromptKind(value) })));
    this.promptText = h("textarea", { id: "cfg-system_prompt", class: "input", rows: "6", spellcheck: "true", "data-field": "system_prompt",
      placeholder: "Instructions appended to Claude Code's system prompt…" });

    this.allowed = new ToolGrid("allowed_tools", s.tools);
    this.disallowed = new ToolGrid("disallowed_tools", s.tools);
    this.mcpTools = h("input", { id: "cfg-mcp-tools", class: "input", placeholder: "mcp__github__get_pull_request, mcp__github", "data-field": "allowed_tools.mcp" });
    this.sources = h("div", { class: "check-grid small-grid", "data-field": "setting_sources" },
      s.settingSources.map((x) => h("label", { class: "check" }, h("input", { type: "checkbox", value: x }), h("span", { text: x }))));
    this.env = new KeyValueList("env", { keyLabel: "Variable", valueLabel: "Value", keyPlaceholder: "MY_SETTING" });
    this.agentsList = h("div", { class: "repeat-list", "data-field": "agents" });
    this.serversList = h("div", { class: "repeat-list", "data-field": "mcp_servers" });
    this.cpu = h("input", { id: "cfg-cpu", class: "input", type: "number", min: "0.01", max: "16", step: "0.25", placeholder: "2", "data-field": "resource_limits.cpu_quota" });
    this.inputs["resource_limits.cpu_quota"] = this.cpu;

    this.el.append(
      section("Basics", "file-text",
        h("div", { class: "grid-2" },
          this.text("name", "Name", { required: true, placeholder: "My agent", maxlength: "200" }),
          this.text("id", "Id", { required: true, placeholder: "my-agent", help: "Lowercase letters, digits and dashes; used in the API.", maxlength: "64" })),
        this.text("description", "Description", { multiline: true, rows: 2, placeholder: "What this agent is for (shown on its launch card)" }),
        h("div", { class: "grid-2" }, this.text("version", "Version", { placeholder: s.defaults.version || "" }),
          this.text("model", "Model", { placeholder: "default", list: "model-options", help: "An alias (sonnet, opus, haiku) or a full model id." }), this.modelList)),
      section("Behaviour", "sliders",
        h("div", { class: "grid-3" },
          field("Permission mode", permission, { name: "permission_mode", id: "cfg-permission_mode",
            help: "bypassPermissions suits unattended agents: the machine is the sandbox." }),
          this.text("max_turns", "Max turns", { type: "number", min: "1", max: "1000", placeholder: "no limit" }),
          this.text("max_budget_usd", "Budget (USD)", { type: "number", min: "0", step: "0.5", placeholder: "no limit" })),
        h("div", { class: "field", "data-wrap": "system_prompt" },
          h("span", { class: "label", text: "System prompt" }), this.promptSeg, this.promptText, h("p", { class: "field-error", hidden: true }))),
      section("Tools", "wrench",
        h("div", { class: "field", "data-wrap": "allowed_tools" },
          h("div", { class: "label-row" }, h("span", { class: "label", text: "Allowed tools" }),
            h("span", { class: "row" },
              button("All", { cls: "btn btn-xs btn-ghost", onClick: () => this.allowed.set(s.tools) }),
              button("None", { cls: "btn btn-xs btn-ghost", onClick: () => this.allowed.set([]) }))),
          this.allowed.el, h("p", { class: "field-error", hidden: true })),
        field("MCP tools", this.mcpTools, { name: "allowed_tools.mcp", id: "cfg-mcp-tools", help: "Comma-separated tool names from your MCP servers (mcp__server or mcp__server__tool)." }),
        h("details", { class: "subsection" }, h("summary", { text: "Blocked tools (disallowed_tools)" }),
          h("div", { class: "field", "data-wrap": "disallowed_tools" }, this.disallowed.el, h("p", { class: "field-error", hidden: true })))),
      section("Sub-agents", "bot", h("p", { class: "muted small", text: "Specialists the agent can delegate to with the Task tool." }), this.agentsList,
        button("Add sub-agent", { icon: "plus", cls: "btn btn-sm", onClick: () => this.addAgent() })),
      section("MCP servers", "plug", h("p", { class: "muted small", text: "Credentials are requested at launch; declare them as env keys, header names or ${VAR} placeholders." }), this.serversList,
        button("Add MCP server", { icon: "plus", cls: "btn btn-sm", onClick: () => this.addServer() })),
      section("Environment", "hash", h("p", { class: "muted small", text: "Variables for the agent's machine. Never put secrets here: configs are stored." }), this.env.el),
      section("Resources and network", "cpu",
        h("div", { class: "grid-3" },
          field("CPUs", this.cpu, { name: "resource_limits.cpu_quota", id: "cfg-cpu", help: "vCPUs (cpu_quota = vCPUs × 100000)" }),
          this.text("resource_limits.memory_limit", "Memory", { placeholder: "4g", help: "128m – 64g" }),
          this.text("resource_limits.storage_limit", "Disk", { placeholder: "10g" })),
        field("Network", network, { name: "network", id: "cfg-network", help: NETWORK_HELP })),
      section("Advanced", "layers",
        this.text("image", "Machine image", { placeholder: "agcluster/agent:latest", help: "Docker / Fly providers only." }),
        field("Setting sources", this.sources, { name: "setting_sources", help: "Which Claude Code settings files the agent loads." })),
    );
  }

  setPromptKind(kind) {
    this.promptKind = kind;
    for (const b of this.promptSeg.children) b.setAttribute("aria-checked", String(b.dataset.value === kind));
    this.promptText.hidden = kind === "none";
    this.promptText.placeholder = kind === "preset" ? "Instructions appended to Claude Code's system prompt…" : "The complete system prompt…";
    changed(this.el);
  }

  addAgent(name = "", agent = {}) {
    const row = new SubAgentRow({ name, agent, tools: this.schema.tools, modelList: "model-options" });
    this.agents.push(row);
    this.agentsList.append(row.el);
    changed(this.agentsList);
    return row;
  }

  addServer(name = "", server = {}) {
    const row = new McpServerRow({ name, server, transports: this.schema.transports });
    this.servers.push(row);
    this.serversList.append(row.el);
    changed(this.serversList);
    return row;
  }

  /** Rows still on the page (a removed row drops out here). */
  live(rows) {
    return rows.filter((r) => r.el.parentElement);
  }

  // ------------------------------------------------------- form → config
  value(name) {
    return this.inputs[name] ? this.inputs[name].value.trim() : "";
  }

  collect() {
    const c = {};
    const val = (name) => this.value(name);
    c.id = val("id");
    c.name = val("name");
    if (val("description")) c.description = val("description");
    if (val("version")) c.version = val("version");
    const prompt = this.promptText.value;
    if (this.promptKind === "preset") c.system_prompt = prompt.trim() ? { preset: "claude_code", append: prompt } : { preset: "claude_code" };
    else if (this.promptKind === "custom" && prompt.trim()) c.system_prompt = prompt;
    const mcp = this.mcpTools.value.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);
    c.allowed_tools = [...this.allowed.get(), ...mcp];
    const blocked = this.disallowed.get();
    if (blocked.length) c.disallowed_tools = blocked;
    c.permission_mode = this.inputs.permission_mode.value;
    if (val("max_turns")) c.max_turns = numberOr(val("max_turns"));
    if (val("max_budget_usd")) c.max_budget_usd = numberOr(val("max_budget_usd"));
    if (val("model")) c.model = val("model");
    if (val("image")) c.image = val("image");
    const env = this.env.get();
    if (Object.keys(env).length) c.env = env;
    const servers = Object.fromEntries(this.live(this.servers).map((r) => r.collect()));
    if (Object.keys(servers).length) c.mcp_servers = servers;
    const agents = Object.fromEntries(this.live(this.agents).map((r) => r.collect()));
    if (Object.keys(agents).length) c.agents = agents;
    const limits = {};
    if (this.cpu.value.trim()) limits.cpu_quota = Math.round(Number(this.cpu.value) * 100_000);
    if (val("resource_limits.memory_limit")) limits.memory_limit = val("resource_limits.memory_limit");
    if (val("resource_limits.storage_limit")) limits.storage_limit = val("resource_limits.storage_limit");
    if (Object.keys(limits).length) c.resource_limits = limits;
    c.network = this.inputs.network.value;
    const sources = [...this.sources.querySelectorAll("input:checked")].map((x) => x.value);
    if (sources.length) c.setting_sources = sources;
    return c;
  }

  // ------------------------------------------------------- config → form
  /** Fill the form from a config; a field the config leaves out takes the server's default. */
  load(config) {
    const c = { ...this.schema.defaults, ...config };
    const set = (name, v) => { if (this.inputs[name]) this.inputs[name].value = v === null || v === undefined ? "" : String(v); };
    for (const name of ["id", "name", "description", "version", "model", "max_turns", "max_budget_usd", "image", "permission_mode", "network"]) set(name, c[name]);
    if (typeof c.system_prompt === "string") {
      this.promptText.value = c.system_prompt;
      this.setPromptKind("custom");
    } else if (c.system_prompt && c.system_prompt.preset) {
      this.promptText.value = c.system_prompt.append || "";
      this.setPromptKind("preset");
    } else {
      this.promptText.value = "";
      this.setPromptKind(c.id ? "none" : "preset");
    }
    const allowed = c.allowed_tools || [];
    this.allowed.set(allowed);
    this.mcpTools.value = allowed.filter((t) => t.startsWith("mcp__")).join(", ");
    this.disallowed.set(c.disallowed_tools || []);
    this.env.set(c.env);
    this.servers = [];
    this.agents = [];
    fill(this.serversList);
    fill(this.agentsList);
    for (const [n, s] of Object.entries(c.mcp_servers || {})) this.addServer(n, s);
    for (const [n, a] of Object.entries(c.agents || {})) this.addAgent(n, a);
    const limits = c.resource_limits || {};
    this.cpu.value = limits.cpu_quota ? String(limits.cpu_quota / 100_000) : "";
    set("resource_limits.memory_limit", limits.memory_limit);
    set("resource_limits.storage_limit", limits.storage_limit);
    for (const x of this.sources.querySelectorAll("input")) x.checked = (c.setting_sources || []).includes(x.value);
    changed(this.el);
  }

  /** Where an error at a config path (as the server reports it) is shown. */
  wrapFor(path) {
    const [top, key, ...rest] = path;
    if ((top === "mcp_servers" || top === "agents") && key !== undefined) {
      const row = this.live(top === "mcp_servers" ? this.servers : this.agents).find((r) => r.name === key);
      if (row) return row.wrapFor(rest);
    }
    if (top === "resource_limits" && key) return this.el.querySelector(`[data-wrap="resource_limits.${key}"]`);
    if (top === "env") return this.env.el;
    return this.el.querySelector(`[data-wrap="${top}"]`);
  }

  /** Rows whose name is still empty (checked before asking the server). */
  unnamed() {
    return { agents: this.live(this.agents).some((r) => !r.name), servers: this.live(this.servers).some((r) => !r.name) };
  }

  syncRows() {
    for (const row of this.live(this.agents)) row.sync();
  }
}

function numberOr(v) {
  const n = Number(v);
  return Number.isFinite(n) ? n : v;
}
