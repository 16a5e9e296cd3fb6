// The configuration builder: a form for every field of the agent config schema
// (control/config_schema.py), a live YAML preview, validation through the API with the
// errors shown next to their fields, save as a custom config, and launch directly.

import { api, tokenMode } from "../api.js";
import { button, clear, fill, h, icon, spinner } from "../dom.js";
import { highlightInto } from "../markdown.js";
import { getKey, rememberSession } from "../store.js";
import { askForCredentials } from "../mcp.js";
import { askForKey, confirmDialog, errorBox, toast } from "../ui.js";

let YAML = null;
const yamlReady = import("/ui/node_modules/yaml/browser/index.js").then((m) => { YAML = m.default || m; }).catch(() => {});

const MODELS = ["sonnet", "opus", "haiku", "inherit"];
const SLUG = /^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$/;

export function mount(root, [configId], { meta, navigate }) {
  const ac = new AbortController();
  const tools = meta.known_tools && meta.known_tools.length ? meta.known_tools
    : ["Bash", "Read", "Write", "Edit", "MultiEdit", "Glob", "Grep", "LS", "WebFetch", "WebSearch", "Task", "TodoWrite", "NotebookEdit"];
  const permissionModes = meta.permission_modes && meta.permission_modes.length ? meta.permission_modes
    : ["default", "acceptEdits", "plan", "bypassPermissions", "dontAsk"];
  const settingSources = meta.setting_sources && meta.setting_sources.length ? meta.setting_sources : ["user", "project", "local"];
  const presetIds = new Set(meta.preset_ids || []);
  let idTouched = false;
  let editing = null; // id of the custom config being edited

  // ------------------------------------------------------------ form parts
  const form = h("form", { class: "builder-form", novalidate: true, "aria-label": "Agent configuration" });
  const summary = h("div", { class: "builder-summary", "aria-live": "polite" });
  const yamlCode = h("code", { class: "hljs language-yaml" });
  const startFrom = h("select", { class: "input", id: "start-from", "aria-label": "Start from" }, h("option", { value: "", text: "Blank configuration" }));

  const f = {}; // simple inputs by field name
  const text = (name, label, { placeholder = "", help = "", required = false, type = "text", multiline = false, rows = 3, list, ...rest } = {}) => {
    const id = `cfg-${name.replace(/\./g, "-")}`;
    const input = multiline
      ? h("textarea", { id, class: "input", rows: String(rows), placeholder, spellcheck: "false", "data-field": name, ...rest })
      : h("input", { id, class: "input", type, placeholder, autocomplete: "off", spellcheck: "false", "data-field": name, list, ...rest });
    f[name] = input;
    return field(label, input, { help, required, name, id });
  };

  const modelList = h("datalist", { id: "model-options" }, MODELS.map((m) => h("option", { value: m })));
  const permission = h("select", { id: "cfg-permission_mode", class: "input", "data-field": "permission_mode" },
    permissionModes.map((m) => h("option", { value: m, text: m })));
  f.permission_mode = permission;

  const promptMode = h("div", { class: "seg", role: "radiogroup", "aria-label": "System prompt" });
  const promptModes = [["preset", "Claude Code + additions"], ["custom", "Custom prompt"], ["none", "None"]];
  let promptKind = "preset";
  const promptText = h("textarea", { id: "cfg-system_prompt", class: "input", rows: "6", spellcheck: "true", "data-field": "system_prompt",
    placeholder: "Instructions appended to Claude Code's system prompt…" });
  promptModes.forEach(([value, label]) => promptMode.append(h("button", { type: "button", role: "radio", class: "seg-btn", "data-value": value,
    "aria-checked": String(value === promptKind), text: label, onclick: () => setPromptKind(value) })));
  function setPromptKind(kind) {
    promptKind = kind;
    for (const b of promptMode.children) b.setAttribute("aria-checked", String(b.dataset.value === kind));
    promptText.hidden = kind === "none";
    promptText.placeholder = kind === "preset" ? "Instructions appended to Claude Code's system prompt…" : "The complete system prompt…";
    update();
  }

  const allowed = toolGrid("allowed_tools", tools);
  const disallowed = toolGrid("disallowed_tools", tools);
  const mcpTools = h("input", { id: "cfg-mcp-tools", class: "input", placeholder: "mcp__github__get_pull_request, mcp__github", "data-field": "allowed_tools.mcp" });
  const sources = h("div", { class: "check-grid small-grid", "data-field": "setting_sources" },
    settingSources.map((s) => h("label", { class: "check" }, h("input", { type: "checkbox", value: s }), h("span", { text: s }))));

  const envRows = kvList("env", "Variable", "Value", "MY_SETTING");
  const agentsList = h("div", { class: "repeat-list", "data-field": "agents" });
  const mcpList = h("div", { class: "repeat-list", "data-field": "mcp_servers" });

  const cpu = h("input", { id: "cfg-cpu", class: "input", type: "number", min: "0.01", max: "16", step: "0.25", placeholder: "2", "data-field": "resource_limits.cpu_quota" });
  f["resource_limits.cpu_quota"] = cpu;

  form.append(
    section("Basics", "file-text",
      h("div", { class: "grid-2" },
        text("name", "Name", { required: true, placeholder: "My agent", maxlength: "200" }),
        text("id", "Id", { required: true, placeholder: "my-agent", help: "Lowercase letters, digits and dashes; used in the API.", maxlength: "64" })),
      text("description", "Description", { multiline: true, rows: 2, placeholder: "What this agent is for (shown on its launch card)" }),
      h("div", { class: "grid-2" }, text("version", "Version", { placeholder: "1.0" }),
        text("model", "Model", { placeholder: "default", list: "model-options", help: "An alias (sonnet, opus, haiku) or a full model id." }), modelList)),
    section("Behaviour", "sliders",
      h("div", { class: "grid-3" },
        field("Permission mode", permission, { name: "permission_mode", id: "cfg-permission_mode",
          help: "bypassPermissions suits unattended agents: the machine is the sandbox." }),
        text("max_turns", "Max turns", { type: "number", min: "1", max: "1000", placeholder: "no limit" }),
        text("max_budget_usd", "Budget (USD)", { type: "number", min: "0", step: "0.5", placeholder: "no limit" })),
      h("div", { class: "field", "data-wrap": "system_prompt" },
        h("span", { class: "label", text: "System prompt" }), promptMode, promptText, h("p", { class: "field-error", hidden: true }))),
    section("Tools", "wrench",
      h("div", { class: "field", "data-wrap": "allowed_tools" },
        h("div", { class: "label-row" }, h("span", { class: "label", text: "Allowed tools" }),
          h("span", { class: "row" },
            button("All", { cls: "btn btn-xs btn-ghost", onClick: () => setTools(allowed, tools) }),
            button("None", { cls: "btn btn-xs btn-ghost", onClick: () => setTools(allowed, []) }))),
        allowed, h("p", { class: "field-error", hidden: true })),
      field("MCP tools", mcpTools, { name: "allowed_tools.mcp", id: "cfg-mcp-tools", help: "Comma-separated tool names from your MCP servers (mcp__server or mcp__server__tool)." }),
      h("details", { class: "subsection" }, h("summary", { text: "Blocked tools (disallowed_tools)" }),
        h("div", { class: "field", "data-wrap": "disallowed_tools" }, disallowed, h("p", { class: "field-error", hidden: true })))),
    section("Sub-agents", "bot", h("p", { class: "muted small", text: "Specialists the agent can delegate to with the Task tool." }), agentsList,
      button("Add sub-agent", { icon: "plus", cls: "btn btn-sm", onClick: () => { agentsList.append(agentRow()); update(); } })),
    section("MCP servers", "plug", h("p", { class: "muted small", text: "Credentials are requested at launch; declare them as env keys, header names or ${VAR} placeholders." }), mcpList,
      button("Add MCP server", { icon: "plus", cls: "btn btn-sm", onClick: () => { mcpList.append(mcpRow()); update(); } })),
    section("Environment", "hash", h("p", { class: "muted small", text: "Variables for the agent's machine. Never put secrets here: configs are stored." }), envRows.el),
    section("Resources", "cpu",
      h("div", { class: "grid-3" },
        field("CPUs", cpu, { name: "resource_limits.cpu_quota", id: "cfg-cpu", help: "vCPUs (cpu_quota = vCPUs × 100000)" }),
        text("resource_limits.memory_limit", "Memory", { placeholder: "4g", help: "128m – 64g" }),
        text("resource_limits.storage_limit", "Disk", { placeholder: "10g" }))),
    section("Advanced", "layers",
      text("image", "Machine image", { placeholder: "agcluster/agent:latest", help: "Docker / Fly providers only." }),
      field("Setting sources", sources, { name: "setting_sources", help: "Which Claude Code settings files the agent loads." })),
  );

  const validateBtn = button("Validate", { icon: "check", cls: "btn" });
  const saveBtn = button("Save configuration", { icon: "download", cls: "btn" });
  const launchBtn = button("Launch now", { icon: "rocket", cls: "btn btn-primary" });
  const deleteBtn = button("Delete", { icon: "trash", cls: "btn btn-danger-soft", hidden: true });
  const actionStatus = h("span", { class: "action-status", "aria-live": "polite" });
  const copyBtn = button("Copy YAML", { icon: "copy", cls: "btn btn-xs btn-ghost", onClick: async () => {
    try { await navigator.clipboard.writeText(yamlCode.textContent); toast("YAML copied", { timeout: 1500 }); } catch { /* no clipboard */ }
  } });

  root.append(h("section", { class: "page page-wide" },
    h("div", { class: "page-head" },
      h("div", {}, h("h1", { text: "Config builder" }),
        h("p", { class: "lead", text: "Describe an agent: its tools, prompt, sub-agents, MCP servers and resources. Save it for later or launch it straight away." })),
      h("div", { class: "field inline-field" }, h("label", { for: "start-from", text: "Start from" }), startFrom)),
    h("div", { class: "builder" },
      h("div", { class: "builder-main" }, summary, form,
        h("div", { class: "builder-actions" }, deleteBtn, actionStatus, validateBtn, saveBtn, launchBtn)),
      h("aside", { class: "builder-preview card", "aria-label": "YAML preview" },
        h("div", { class: "preview-head" }, h("h2", {}, icon("file-text", { size: 16 }), h("span", { text: "YAML preview" })), copyBtn),
        h("pre", { class: "yaml-preview", tabindex: "0" }, yamlCode)))));

  // --------------------------------------------------------------- helpers
  function field(label, input, { help = "", required = false, name = "", id = "" } = {}) {
    return h("div", { class: "field", "data-wrap": name },
      h("label", { for: id || input.id, class: "label" }, label, required ? h("span", { class: "req", "aria-hidden": "true", text: " *" }) : null),
      input,
      help ? h("p", { class: "field-help", text: help }) : null,
      h("p", { class: "field-error", hidden: true }));
  }

  function section(title, iconName, ...children) {
    const id = `sec-${title.toLowerCase().replace(/\W+/g, "-")}`;
    return h("fieldset", { class: "card form-section", "aria-labelledby": id },
      h("legend", { class: "sr-only", text: title }),
      h("h2", { id, class: "section-title" }, icon(iconName, { size: 16 }), h("span", { text: title })),
      children);
  }

  function toolGrid(name, list) {
    return h("div", { class: "check-grid", "data-field": name, role: "group", "aria-label": name.replace("_", " ") },
      list.map((t) => h("label", { class: "check" }, h("input", { type: "checkbox", value: t }), h("span", { text: t }))));
  }

  function setTools(grid, list) {
    for (const c of grid.querySelectorAll("input[type=checkbox]")) c.checked = list.includes(c.value);
    update();
  }

  function checked(grid) {
    return [...grid.querySelectorAll("input[type=checkbox]:checked")].map((c) => c.value);
  }

  function kvList(name, keyLabel, valueLabel, keyPlaceholder) {
    const list = h("div", { class: "kv-list", "data-field": name });
    const add = button(`Add ${keyLabel.toLowerCase()}`, { icon: "plus", cls: "btn btn-xs btn-ghost", onClick: () => { list.append(kvRow()); update(); list.lastChild.querySelector("input").focus(); } });
    function kvRow(k = "", v = "") {
      const row = h("div", { class: "kv-row", "data-row": "" },
        h("input", { class: "input input-sm kv-key", placeholder: keyPlaceholder, value: k, "aria-label": keyLabel, spellcheck: "false" }),
        h("input", { class: "input input-sm kv-value", placeholder: "value", value: v ?? "", "aria-label": valueLabel, spellcheck: "false" }),
        button(`Remove ${keyLabel.toLowerCase()}`, { icon: "x", cls: "btn-icon btn-xs", iconOnly: true, onClick: () => { row.remove(); update(); } }),
        h("p", { class: "field-error", hidden: true }));
      return row;
    }
    return {
      el: h("div", { class: "kv", "data-wrap": name }, list, add, h("p", { class: "field-error", hidden: true })),
      set(obj) { fill(list, Object.entries(obj || {}).map(([k, v]) => kvRow(k, v))); },
      get() {
        const out = {};
        for (const row of list.children) {
          const k = row.querySelector(".kv-key").value.trim();
          if (k) out[k] = row.querySelector(".kv-value").value;
        }
        return out;
      },
      list,
    };
  }

  function removeBtn(label, row) {
    return button(label, { icon: "trash", cls: "btn btn-xs btn-ghost", onClick: () => { row.remove(); update(); } });
  }

  function agentRow(name = "", a = {}) {
    const uid = Math.random().toString(36).slice(2, 8);
    const row = h("div", { class: "repeat-item", "data-row": "" });
    const nameIn = h("input", { id: `ag-name-${uid}`, class: "input input-sm row-name", value: name, placeholder: "reviewer", spellcheck: "false", "data-sub": "__key" });
    const model = h("input", { id: `ag-model-${uid}`, class: "input input-sm", value: a.model || "", placeholder: "inherit", list: "model-options", "data-sub": "model" });
    const desc = h("input", { id: `ag-desc-${uid}`, class: "input input-sm", value: a.description || "", placeholder: "When to use this sub-agent", "data-sub": "description" });
    const prompt = h("textarea", { id: `ag-prompt-${uid}`, class: "input input-sm", rows: "3", placeholder: "You are a …", "data-sub": "prompt" });
    prompt.value = a.prompt || "";
    const grid = h("div", { class: "check-grid compact", "data-sub": "tools", role: "group", "aria-label": "Sub-agent tools" },
      tools.map((t) => h("label", { class: "check" }, h("input", { type: "checkbox", value: t, checked: (a.tools || []).includes(t) }), h("span", { text: t }))));
    const toolsLabel = h("summary", {});
    row.append(
      h("div", { class: "repeat-head" }, icon("bot", { size: 14 }), h("strong", { text: "Sub-agent" }), removeBtn("Remove", row)),
      h("div", { class: "grid-2" }, subField("Name", nameIn, "__key", true), subField("Model", model, "model")),
      subField("Description", desc, "description", true),
      subField("Prompt", prompt, "prompt", true),
      h("details", { class: "subsection" }, toolsLabel, subField("", grid, "tools")));
    row.syncToolsLabel = () => {
      const n = checked(grid).length;
      toolsLabel.textContent = n ? `Tools (${n} selected)` : "Tools (none selected: inherits the agent's tools)";
    };
    row.syncToolsLabel();
    row.collect = () => {
      const out = { description: desc.value, prompt: prompt.value };
      const t = checked(grid);
      if (t.length) out.tools = t;
      if (model.value.trim()) out.model = model.value.trim();
      return [nameIn.value.trim(), out];
    };
    return row;
  }

  function mcpRow(name = "", s = {}) {
    const uid = Math.random().toString(36).slice(2, 8);
    const row = h("div", { class: "repeat-item", "data-row": "" });
    const nameIn = h("input", { id: `mcp-name-${uid}`, class: "input input-sm row-name", value: name, placeholder: "github", spellcheck: "false", "data-sub": "__key" });
    const type = h("select", { id: `mcp-type-${uid}`, class: "input input-sm", "data-sub": "type" }, ["stdio", "http", "sse"].map((t) => h("option", { value: t, text: t })));
    type.value = s.type || "stdio";
    const command = h("input", { id: `mcp-cmd-${uid}`, class: "input input-sm", value: s.command || "", placeholder: "npx", spellcheck: "false", "data-sub": "command" });
    const args = h("textarea", { id: `mcp-args-${uid}`, class: "input input-sm", rows: "2", placeholder: "one argument per line", spellcheck: "false", "data-sub": "args" });
    args.value = (s.args || []).join("\n");
    const url = h("input", { id: `mcp-url-${uid}`, class: "input input-sm", value: s.url || "", placeholder: "https://example.com/mcp", spellcheck: "false", "data-sub": "url" });
    const env = kvList(`mcp-env-${uid}`, "Variable", "Value", "API_TOKEN");
    const headers = kvList(`mcp-headers-${uid}`, "Header", "Value", "Authorization");
    env.set(s.env);
    headers.set(s.headers);
    const stdioPart = h("div", { class: "stdio-part" }, h("div", { class: "grid-2" }, subField("Command", command, "command", true), subField("Arguments", args, "args")),
      subField("Environment", env.el, "env"));
    const httpPart = h("div", { class: "http-part" }, subField("URL", url, "url", true), subField("Headers", headers.el, "headers"));
    const sync = () => { stdioPart.hidden = type.value !== "stdio"; httpPart.hidden = type.value === "stdio"; };
    type.addEventListener("change", sync);
    sync();
    row.append(
      h("div", { class: "repeat-head" }, icon("plug", { size: 14 }), h("strong", { text: "MCP server" }), removeBtn("Remove", row)),
      h("div", { class: "grid-2" }, subField("Name", nameIn, "__key", true), subField("Transport", type, "type")),
      stdioPart, httpPart);
    row.collect = () => {
      const out = { type: type.value };
      if (type.value === "stdio") {
        out.command = command.value.trim();
        const a = args.value.split("\n").map((x) => x.trim()).filter(Boolean);
        if (a.length) out.args = a;
        const e = env.get();
        if (Object.keys(e).length) out.env = e;
      } else {
        out.url = url.value.trim();
        const hd = headers.get();
        if (Object.keys(hd).length) out.headers = hd;
      }
      return [nameIn.value.trim(), out];
    };
    return row;
  }

  function subField(label, input, sub, required = false) {
    return h("div", { class: "field", "data-sub-wrap": sub },
      label ? h("label", { class: "label", for: input.id || null }, label, required ? h("span", { class: "req", "aria-hidden": "true", text: " *" }) : null) : null,
      input, h("p", { class: "field-error", hidden: true }));
  }

  // ------------------------------------------------------- form ⇄ config
  function collect() {
    const c = {};
    const val = (name) => (f[name] ? f[name].value.trim() : "");
    c.id = val("id");
    c.name = val("name");
    if (val("description")) c.description = f.description.value.trim();
    if (val("version")) c.version = val("version");
    if (promptKind === "preset") c.system_prompt = promptText.value.trim() ? { preset: "claude_code", append: promptText.value } : { preset: "claude_code" };
    else if (promptKind === "custom" && promptText.value.trim()) c.system_prompt = promptText.value;
    const mcp = mcpTools.value.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);
    c.allowed_tools = [...checked(allowed), ...mcp];
    const dis = checked(disallowed);
    if (dis.length) c.disallowed_tools = dis;
    c.permission_mode = permission.value;
    if (val("max_turns")) c.max_turns = numberOr(val("max_turns"));
    if (val("max_budget_usd")) c.max_budget_usd = numberOr(val("max_budget_usd"));
    if (val("model")) c.model = val("model");
    if (val("image")) c.image = val("image");
    const env = envRows.get();
    if (Object.keys(env).length) c.env = env;
    const servers = {};
    for (const row of mcpList.children) { const [n, s] = row.collect(); servers[n] = s; }
    if (Object.keys(servers).length) c.mcp_servers = servers;
    const agents = {};
    for (const row of agentsList.children) { const [n, a] = row.collect(); agents[n] = a; }
    if (Object.keys(agents).length) c.agents = agents;
    const limits = {};
    if (cpu.value.trim()) limits.cpu_quota = Math.round(Number(cpu.value) * 100_000);
    if (val("resource_limits.memory_limit")) limits.memory_limit = val("resource_limits.memory_limit");
    if (val("resource_limits.storage_limit")) limits.storage_limit = val("resource_limits.storage_limit");
    if (Object.keys(limits).length) c.resource_limits = limits;
    const src = [...sources.querySelectorAll("input:checked")].map((x) => x.value);
    if (src.length) c.setting_sources = src;
    return c;
  }

  function loadForm(c) {
    const set = (name, v) => { if (f[name]) f[name].value = v === null || v === undefined ? "" : String(v); };
    set("id", c.id);
    set("name", c.name);
    set("description", c.description);
    set("version", c.version);
    set("model", c.model);
    set("max_turns", c.max_turns);
    set("max_budget_usd", c.max_budget_usd);
    set("image", c.image);
    permission.value = c.permission_mode || "bypassPermissions";
    if (typeof c.system_prompt === "string") { promptText.value = c.system_prompt; setPromptKind("custom"); } else if (c.system_prompt && c.system_prompt.preset) { promptText.value = c.system_prompt.append || ""; setPromptKind("preset"); } else { promptText.value = ""; setPromptKind(c.id ? "none" : "preset"); }
    const at = c.allowed_tools || [];
    setTools(allowed, at);
    mcpTools.value = at.filter((t) => t.startsWith("mcp__")).join(", ");
    setTools(disallowed, c.disallowed_tools || []);
    envRows.set(c.env);
    fill(mcpList, Object.entries(c.mcp_servers || {}).map(([n, s]) => mcpRow(n, s)));
    fill(agentsList, Object.entries(c.agents || {}).map(([n, a]) => agentRow(n, a)));
    const limits = c.resource_limits || {};
    cpu.value = limits.cpu_quota ? String(limits.cpu_quota / 100_000) : "";
    set("resource_limits.memory_limit", limits.memory_limit);
    set("resource_limits.storage_limit", limits.storage_limit);
    for (const x of sources.querySelectorAll("input")) x.checked = (c.setting_sources || []).includes(x.value);
    clearErrors();
    update();
  }

  function numberOr(v) {
    const n = Number(v);
    return Number.isFinite(n) ? n : v;
  }

  // -------------------------------------------------------------- preview
  function update() {
    const c = collect();
    let text;
    try {
      text = YAML ? YAML.stringify(c, { lineWidth: 100 }) : JSON.stringify(c, null, 2);
    } catch {
      text = JSON.stringify(c, null, 2);
    }
    highlightInto(yamlCode, text, YAML ? "yaml" : "json");
    for (const row of agentsList.children) if (row.syncToolsLabel) row.syncToolsLabel();
  }

  form.addEventListener("input", (e) => {
    if (e.target === f.id) idTouched = true;
    if (e.target === f.name && !idTouched && !editing) f.id.value = slugify(f.name.value);
    const wrap = e.target.closest("[data-wrap], [data-sub-wrap]");
    if (wrap) showError(wrap, "");
    update();
  });
  form.addEventListener("change", update);

  // --------------------------------------------------------------- errors
  function clearErrors() {
    for (const p of root.querySelectorAll(".field-error")) { p.hidden = true; p.textContent = ""; }
    for (const i of root.querySelectorAll("[aria-invalid]")) i.removeAttribute("aria-invalid");
    clear(summary);
  }

  function showError(wrap, message) {
    const p = wrap.querySelector(":scope > .field-error");
    if (!p) return;
    p.hidden = !message;
    p.textContent = message;
    const control = wrap.querySelector(":scope > input, :scope > textarea, :scope > select");
    if (control) {
      if (message) {
        control.setAttribute("aria-invalid", "true");
        if (!p.id) p.id = `err-${Math.random().toString(36).slice(2, 8)}`;
        control.setAttribute("aria-describedby", p.id);
      } else control.removeAttribute("aria-invalid");
    }
  }

  function wrapFor(path) {
    const [top, key, ...rest] = path;
    if ((top === "mcp_servers" || top === "agents") && key !== undefined) {
      const list = top === "mcp_servers" ? mcpList : agentsList;
      const row = [...list.children].find((r) => r.querySelector(".row-name").value.trim() === key);
      if (row) {
        const sub = rest[0] === "key" ? "__key" : rest.find((x) => x !== "value") || "__key";
        return row.querySelector(`[data-sub-wrap="${sub}"]`) || row.querySelector('[data-sub-wrap="__key"]');
      }
    }
    if (top === "resource_limits" && key) return root.querySelector(`[data-wrap="resource_limits.${key}"]`);
    if (top === "env") return envRows.el;
    return root.querySelector(`[data-wrap="${top}"]`);
  }

  function showErrors(details) {
    clearErrors();
    const flat = [];
    const walk = (node, path) => {
      if (Array.isArray(node)) {
        if (node.every((x) => typeof x === "string")) flat.push([path, node.join(" ")]);
        else node.forEach((x, i) => walk(x, [...path, String(i)]));
      } else if (node && typeof node === "object") {
        for (const [k, v] of Object.entries(node)) walk(v, [...path, k]);
      } else if (node !== undefined) flat.push([path, String(node)]);
    };
    walk(details, []);
    const unplaced = [];
    let first = null;
    for (const [path, message] of flat) {
      const wrap = path.length ? wrapFor(path) : null;
      const label = path.filter((x) => x !== "value").join(".");
      if (wrap) {
        const p = wrap.querySelector(":scope > .field-error");
        const prefix = path[0] === "env" || (path[0] === "allowed_tools" && path.length > 1) || (path[0] === "disallowed_tools" && path.length > 1)
          ? `${path.slice(1).filter((x) => x !== "value" && x !== "key").join(".")}: ` : "";
        const existing = p && !p.hidden ? `${p.textContent} ` : "";
        showError(wrap, `${existing}${prefix}${message}`.trim());
        first ||= wrap;
      } else unplaced.push(`${label || "config"}: ${message}`);
    }
    if (flat.length) {
      summary.append(h("div", { class: "alert alert-error", role: "alert" }, icon("alert"),
        h("div", {}, h("strong", { text: `${flat.length === 1 ? "1 problem" : `${flat.length} problems`} to fix` }),
          unplaced.length ? h("ul", {}, unplaced.map((u) => h("li", { text: u }))) : h("p", { text: "See the highlighted fields." }))));
    }
    const target = first || summary;
    target.scrollIntoView({ block: "center" });
    const control = first && first.querySelector("input, textarea, select");
    if (control) control.focus({ preventScroll: true });
  }

  /** Quick checks before asking the server (no request for an obviously incomplete form). */
  function localErrors(c) {
    const d = {};
    if (!c.name) d.name = ["Give the agent a name."];
    if (!c.id) d.id = ["An id is required."];
    else if (!SLUG.test(c.id)) d.id = ["Use 3–64 lowercase letters, digits and dashes (not at the ends)."];
    for (const row of agentsList.children) if (!row.querySelector(".row-name").value.trim()) (d.agents ||= {})[""] = ["Every sub-agent needs a name."];
    for (const row of mcpList.children) if (!row.querySelector(".row-name").value.trim()) (d.mcp_servers ||= {})[""] = ["Every MCP server needs a name."];
    return Object.keys(d).length ? d : null;
  }

  async function validate() {
    const c = collect();
    const local = localErrors(c);
    if (local) {
      showErrors(local);
      return null;
    }
    try {
      const r = await api("/api/configs/validate", { method: "POST", body: c, signal: ac.signal });
      clearErrors();
      return r.config || c;
    } catch (err) {
      if (err.name === "AbortError") return null;
      if (err.status === 400 && err.details && Object.keys(err.details).length) showErrors(err.details);
      else { fill(summary, errorBox(err, { title: "Could not validate" })); summary.scrollIntoView({ block: "center" }); }
      return null;
    }
  }

  async function busy(btn, label, fn) {
    const buttons = [validateBtn, saveBtn, launchBtn];
    buttons.forEach((b) => { b.disabled = true; });
    fill(actionStatus, spinner(14), h("span", { text: label }));
    try {
      return await fn();
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
      clear(actionStatus);
    }
  }

  validateBtn.addEventListener("click", () => busy(validateBtn, "Validating…", async () => {
    if (await validate()) {
      fill(summary, h("div", { class: "alert alert-ok", role: "status" }, icon("check-circle"), h("p", { text: "The configuration is valid." })));
    }
  }));

  saveBtn.addEventListener("click", () => busy(saveBtn, "Saving…", async () => {
    const c = await validate();
    if (!c) return;
    if (presetIds.has(c.id)) {
      showErrors({ id: ["This id belongs to a preset; choose another id for your copy."] });
      return;
    }
    if (c.id !== editing && knownIds.has(c.id)) {
      const ok = await confirmDialog({ title: "Replace configuration?", message: `A custom configuration with the id "${c.id}" exists. Replace it?`, confirmLabel: "Replace", danger: true });
      if (!ok) return;
    }
    if (!tokenMode() && !getKey()) {
      const key = await askForKey("Saving ties the configuration to your API key: only that key can replace or delete it later.");
      if (!key) return;
    }
    try {
      const saved = await api("/api/configs/", { method: "POST", body: collect(), signal: ac.signal });
      editing = saved.id;
      knownIds.add(saved.id);
      deleteBtn.hidden = false;
      history.replaceState(null, "", `#/builder/${saved.id}`);
      toast(`Saved “${saved.name}”. It is on the launch page now.`, { type: "success" });
      loadList(saved.id);
    } catch (err) {
      if (err.status === 400) showErrors(err.details && Object.keys(err.details).length ? err.details : { _schema: [err.message] });
      else fill(summary, errorBox(err, { title: err.status === 403 || err.status === 409 ? "This configuration belongs to someone else" : "Could not save" }));
    }
  }));

  launchBtn.addEventListener("click", () => busy(launchBtn, "Launching…", async () => {
    const c = await validate();
    if (!c) return;
    let key = getKey();
    if (!key) key = await askForKey("Launching needs your Anthropic API key.");
    if (!key) return;
    const mcpEnv = await askForCredentials(c);
    if (mcpEnv === null) return;
    fill(actionStatus, spinner(14), h("span", { text: "Starting a machine…" }));
    try {
      const body = { api_key: key, config: collect() };
      if (Object.keys(mcpEnv).length) body.mcp_env = mcpEnv;
      const r = await api("/api/agents/launch", { method: "POST", body, key: "", signal: ac.signal });
      rememberSession(r.session_id);
      navigate(`#/session/${r.session_id}`);
    } catch (err) {
      if (err.name === "AbortError") return;
      if (err.status === 400 && err.details && Object.keys(err.details).length) showErrors(err.details.config || err.details);
      else { fill(summary, errorBox(err, { title: "Launch failed" })); summary.scrollIntoView({ block: "center" }); }
    }
  }));

  deleteBtn.addEventListener("click", async () => {
    if (!editing) return;
    const ok = await confirmDialog({ title: "Delete configuration?", message: `Delete the custom configuration "${editing}"? Running sessions keep working.`, confirmLabel: "Delete", danger: true });
    if (!ok) return;
    try {
      await api(`/api/configs/${encodeURIComponent(editing)}`, { method: "DELETE" });
      toast(`Deleted ${editing}`, { type: "success" });
      navigate("#/builder");
    } catch (err) {
      toast(err.message, { type: "error" });
    }
  });

  // ---------------------------------------------------------------- load
  const knownIds = new Set();
  async function loadList(selected = "") {
    try {
      const data = await api("/api/configs/", { signal: ac.signal });
      fill(startFrom, h("option", { value: "", text: "Blank configuration" }),
        h("optgroup", { label: "Presets" }, data.configs.filter((c) => presetIds.has(c.id)).map((c) => h("option", { value: c.id, text: c.name }))),
        h("optgroup", { label: "Your configurations" }, data.configs.filter((c) => !presetIds.has(c.id)).map((c) => h("option", { value: c.id, text: c.name }))));
      for (const c of data.configs) if (!presetIds.has(c.id)) knownIds.add(c.id);
      if (!startFrom.value || selected) startFrom.value = selected;
    } catch (err) {
      if (err.name !== "AbortError") toast(err.message, { type: "error" });
    }
  }

  async function loadConfig(id) {
    if (!id) {
      startFrom.value = "";
      editing = null;
      idTouched = false;
      deleteBtn.hidden = true;
      loadForm({ permission_mode: "bypassPermissions", allowed_tools: ["Bash", "Read", "Write", "Edit", "Glob", "Grep", "TodoWrite"], version: "1.0" });
      return;
    }
    form.inert = true;
    form.setAttribute("aria-busy", "true");
    try {
      const c = await api(`/api/configs/${encodeURIComponent(id)}`, { signal: ac.signal });
      startFrom.value = id;
      if (presetIds.has(id)) {
        editing = null;
        idTouched = true;
        loadForm({ ...c, id: `${c.id}-custom`, name: `${c.name} (custom)` });
        deleteBtn.hidden = true;
      } else {
        editing = c.id;
        idTouched = true;
        loadForm(c);
        deleteBtn.hidden = false;
      }
    } catch (err) {
      if (err.name !== "AbortError") fill(summary, errorBox(err, { title: `Could not load ${id}` }));
    } finally {
      form.inert = false;
      form.removeAttribute("aria-busy");
    }
  }

  startFrom.addEventListener("change", () => {
    history.replaceState(null, "", startFrom.value ? `#/builder/${startFrom.value}` : "#/builder");
    loadConfig(startFrom.value);
  });

  // The blank form is usable at once; a config named in the URL replaces it when loaded.
  loadConfig(configId || "");
  yamlReady.then(update);
  loadList(configId || "");

  return () => ac.abort();
}

function slugify(name) {
  return name.toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "").replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 64);
}
