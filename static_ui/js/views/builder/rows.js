// One sub-agent or one MCP server in the builder: its inputs, and how it reads back as
// the config's [name, value] entry.

import { button, h, icon } from "../../dom.js";
import { changed, KeyValueList, subField, ToolGrid } from "./fields.js";

const uid = () => Math.random().toString(36).slice(2, 8);

class Row {
  constructor(kind, iconName, title) {
    this.el = h("div", { class: "repeat-item", "data-row": "", "data-kind": kind });
    this.head = h("div", { class: "repeat-head" }, icon(iconName, { size: 14 }), h("strong", { text: title }),
      button("Remove", { icon: "trash", cls: "btn btn-xs btn-ghost", onClick: () => this.remove() }));
  }

  /** The name typed in (the config's key for this entry). */
  get name() {
    return this.nameInput.value.trim();
  }

  remove() {
    const list = this.el.parentElement;
    this.el.remove();
    if (list) changed(list);
  }

  /** The wrapper an error at `path` (below this entry) belongs to. */
  wrapFor(rest) {
    const sub = rest[0] === "key" ? "__key" : rest.find((x) => x !== "value") || "__key";
    return this.el.querySelector(`[data-sub-wrap="${sub}"]`) || this.el.querySelector('[data-sub-wrap="__key"]');
  }
}

export class SubAgentRow extends Row {
  constructor({ name = "", agent = {}, tools, modelList }) {
    super("agent", "bot", "Sub-agent");
    const id = uid();
    this.nameInput = h("input", { id: `ag-name-${id}`, class: "input input-sm row-name", value: name, placeholder: "reviewer", spellcheck: "false", "data-sub": "__key" });
    this.model = h("input", { id: `ag-model-${id}`, class: "input input-sm", value: agent.model || "", placeholder: "inherit", list: modelList, "data-sub": "model" });
    this.description = h("input", { id: `ag-desc-${id}`, class: "input input-sm", value: agent.description || "", placeholder: "When to use this sub-agent", "data-sub": "description" });
    this.prompt = h("textarea", { id: `ag-prompt-${id}`, class: "input input-sm", rows: "3", placeholder: "You are a …", "data-sub": "prompt" });
    this.prompt.value = agent.prompt || "";
    this.tools = new ToolGrid("agent_tools", tools, { selected: agent.tools || [], compact: true, label: "Sub-agent tools" });
    this.toolsLabel = h("summary", {});
    this.el.append(this.head,
      h("div", { class: "grid-2" }, subField("Name", this.nameInput, "__key", true), subField("Model", this.model, "model")),
      subField("Description", this.description, "description", true),
      subField("Prompt", this.prompt, "prompt", true),
      h("details", { class: "subsection" }, this.toolsLabel, subField("", this.tools.el, "tools")));
    this.sync();
  }

  /** The tools summary line follows the selection. */
  sync() {
    const n = this.tools.get().length;
    this.toolsLabel.textContent = n ? `Tools (${n} selected)` : "Tools (none selected: inherits the agent's tools)";
  }

  collect() {
    const out = { description: this.description.value, prompt: this.prompt.value };
    const tools = this.tools.get();
    if (tools.length) out.tools = tools;
    if (this.model.value.trim()) out.model = this.model.value.trim();
    return [this.name, out];
  }
}

export class McpServerRow extends Row {
  /** `transports` are the server's (stdio runs a command; the others connect to a URL). */
  constructor({ name = "", server = {}, transports }) {
    super("mcp", "plug", "MCP server");
    const id = uid();
    this.nameInput = h("input", { id: `mcp-name-${id}`, class: "input input-sm row-name", value: name, placeholder: "github", spellcheck: "false", "data-sub": "__key" });
    this.type = h("select", { id: `mcp-type-${id}`, class: "input input-sm", "data-sub": "type" }, transports.map((t) => h("option", { value: t, text: t })));
    this.type.value = server.type || transports[0];
    this.command = h("input", { id: `mcp-cmd-${id}`, class: "input input-sm", value: server.command || "", placeholder: "npx", spellcheck: "false", "data-sub": "command" });
    this.args = h("textarea", { id: `mcp-args-${id}`, class: "input input-sm", rows: "2", placeholder: "one argument per line", spellcheck: "false", "data-sub": "args" });
    this.args.value = (server.args || []).join("\n");
    this.url = h("input", { id: `mcp-url-${id}`, class: "input input-sm", value: server.url || "", placeholder: "https://example.com/mcp", spellcheck: "false", "data-sub": "url" });
    this.env = new KeyValueList(`mcp-env-${id}`, { keyLabel: "Variable", valueLabel: "Value", keyPlaceholder: "API_TOKEN" });
    this.headers = new KeyValueList(`mcp-headers-${id}`, { keyLabel: "Header", valueLabel: "Value", keyPlaceholder: "Authorization" });
    this.env.set(server.env);
    this.headers.set(server.headers);
    this.stdioPart = h("div", { class: "stdio-part" },
      h("div", { class: "grid-2" }, subField("Command", this.command, "command", true), subField("Arguments", this.args, "args")),
      subField("Environment", this.env.el, "env"));
    this.httpPart = h("div", { class: "http-part" }, subField("URL", this.url, "url", true), subField("Headers", this.headers.el, "headers"));
    this.type.addEventListener("change", () => this.sync());
    this.el.append(this.head,
      h("div", { class: "grid-2" }, subField("Name", this.nameInput, "__key", true), subField("Transport", this.type, "type")),
      this.stdioPart, this.httpPart);
    this.sync();
  }

  get stdio() {
    return this.type.value === "stdio";
  }

  sync() {
    this.stdioPart.hidden = !this.stdio;
    this.httpPart.hidden = this.stdio;
  }

  collect() {
    const out = { type: this.type.value };
    if (this.stdio) {
      out.command = this.command.value.trim();
      const args = this.args.value.split("\n").map((x) => x.trim()).filter(Boolean);
      if (args.length) out.args = args;
      const env = this.env.get();
      if (Object.keys(env).length) out.env = env;
    } else {
      out.url = this.url.value.trim();
      const headers = this.headers.get();
      if (Object.keys(headers).length) out.headers = headers;
    }
    return [this.name, out];
  }
}
