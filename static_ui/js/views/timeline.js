// Renders the event stream (wire/events.py): user messages, streamed Markdown, thinking, tool calls with
// their results (sub-agent activity nested under its Task call), task updates, per-turn
// usage and errors. The same code renders a live stream and a reloaded transcript.

import { button, clear, fill, h, icon, spinner } from "../dom.js";
import * as fmt from "../format.js";
import { highlightInto, languageFor, renderMarkdown } from "../markdown.js";

const FILE_TOOLS = new Set(["Write", "Edit", "MultiEdit", "NotebookEdit", "Bash", "BashOutput"]);
const TODO_TOOLS = new Set(["TodoWrite", "TaskCreate", "TaskUpdate", "TaskList", "TaskGet"]);
const SUBAGENT_TOOLS = new Set(["Task", "Agent"]);

export class Timeline {
  /**
   * @param {HTMLElement} el the scrolling log element
   * @param {object} hooks {onTodos(todos), onFilesTouched(paths), onStatus(status), onUsage(totals), onOpenFile(path)}
   */
  constructor(el, hooks = {}) {
    this.el = el;
    this.hooks = hooks;
    this.reset();
  }

  reset() {
    clear(this.el);
    this.tools = new Map(); // tool_use id → {card, body, status, nested, name, input}
    this.turn = null; // {el, body, footer, working}
    this.live = null; // {el, text, container}
    this.renderQueued = false;
    this.lastSeq = 0;
    this.prevCumulativeCost = 0;
    this.totals = { turns: 0, cost: 0, input: 0, output: 0 };
    this.pendingUser = null;
    this.touched = new Set();
  }

  get isEmpty() {
    return !this.el.querySelector(".turn");
  }

  // ---------------------------------------------------------------- turns
  /** The bubble shown as soon as the user sends, before the server echoes `user`. */
  addPendingUser(text) {
    this._startTurn(text, { pending: true });
  }

  dropPendingUser() {
    if (this.pendingUser) {
      this.pendingUser.turn.el.remove();
      this.pendingUser = null;
      this.turn = null;
    }
  }

  _startTurn(text, { pending = false, seq } = {}) {
    this._finishLive();
    for (const w of this.el.querySelectorAll(".welcome")) w.remove();
    const body = h("div", { class: "assistant-body" });
    const working = h("div", { class: "working", hidden: true }, spinner(14), h("span", { text: "Working…" }));
    const footer = h("div", { class: "turn-footer" });
    const user = h("div", { class: "msg-user" }, h("div", { class: "bubble", text }));
    const el = h("article", { class: "turn", "data-seq": seq || "" },
      user,
      h("div", { class: "assistant" },
        h("div", { class: "avatar", "aria-hidden": "true" }, icon("sparkles", { size: 14 })),
        h("div", { class: "assistant-main" }, body, working, footer)));
    this.el.append(el);
    this.turn = { el, body, footer, working, userText: text };
    if (pending) this.pendingUser = { turn: this.turn, text };
    return this.turn;
  }

  _ensureTurn() {
    if (!this.turn) {
      const body = h("div", { class: "assistant-body" });
      const working = h("div", { class: "working", hidden: true }, spinner(14), h("span", { text: "Working…" }));
      const footer = h("div", { class: "turn-footer" });
      const el = h("article", { class: "turn turn-system" },
        h("div", { class: "assistant" },
          h("div", { class: "avatar", "aria-hidden": "true" }, icon("sparkles", { size: 14 })),
          h("div", { class: "assistant-main" }, body, working, footer)));
      this.el.append(el);
      this.turn = { el, body, footer, working };
    }
    return this.turn;
  }

  setWorking(on) {
    if (on) this._ensureTurn();
    for (const w of this.el.querySelectorAll(".working")) w.hidden = true;
    if (this.turn) this.turn.working.hidden = !on;
  }

  // ---------------------------------------------------------------- events
  handle(ev) {
    if (typeof ev.seq === "number") {
      if (ev.seq <= this.lastSeq) return; // replayed twice (reconnect overlap): ignore
      this.lastSeq = ev.seq;
    }
    this._dispatch(ev);
    if (ev.type !== "text_delta" && this.hooks.onGrow) this.hooks.onGrow();
  }

  _dispatch(ev) {
    switch (ev.type) {
      case "user": return this._user(ev);
      case "text_delta": return this._delta(ev);
      case "text": return this._text(ev);
      case "thinking": return this._thinking(ev);
      case "tool_use": return this._toolUse(ev);
      case "tool_result": return this._toolResult(ev);
      case "todo": return this.hooks.onTodos && this.hooks.onTodos(ev.todos || []);
      case "permission_request": return this._permission(ev);
      case "result": return this._result(ev);
      case "error": return this._error(ev);
      case "done": return this._done(ev);
      case "session": return this.hooks.onStatus && this.hooks.onStatus(ev.status, ev);
      default: return undefined;
    }
  }

  _user(ev) {
    if (this.pendingUser && this.pendingUser.text === ev.text) {
      this.pendingUser.turn.el.dataset.seq = ev.seq;
      this.pendingUser = null;
      return;
    }
    this._startTurn(ev.text || "", { seq: ev.seq });
  }

  _container(parentId) {
    if (parentId && this.tools.has(parentId)) {
      const tool = this.tools.get(parentId);
      if (tool.nested) return tool.nested;
    }
    return this._ensureTurn().body;
  }

  _delta(ev) {
    if (ev.parent_tool_use_id) return;
    if (!this.live) {
      const el = h("div", { class: "md msg-text streaming", "aria-busy": "true" });
      this._ensureTurn().body.append(el);
      this.live = { el, text: "" };
    }
    this.live.text += ev.text || "";
    this._queueRender();
  }

  _queueRender() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      if (this.live) {
        renderMarkdown(this.live.el, this.live.text, { highlight: false });
        this.live.el.append(h("span", { class: "caret", "aria-hidden": "true" }));
        if (this.hooks.onGrow) this.hooks.onGrow();
      }
    });
  }

  _finishLive(text) {
    if (!this.live) return;
    const live = this.live;
    this.live = null;
    live.el.classList.remove("streaming");
    live.el.removeAttribute("aria-busy");
    this._renderText(live.el, text !== undefined ? text : live.text);
  }

  _renderText(el, text) {
    renderMarkdown(el, text);
    for (const a of el.querySelectorAll("a[data-ws-path]")) {
      a.addEventListener("click", (e) => {
        e.preventDefault();
        if (this.hooks.onOpenFile) this.hooks.onOpenFile(fmt.workspacePath(a.dataset.wsPath));
      });
    }
    if (this.hooks.onImages) this.hooks.onImages(el);
  }

  _text(ev) {
    if (!ev.parent_tool_use_id && this.live) {
      this._finishLive(ev.text || "");
      return;
    }
    const el = h("div", { class: "md msg-text" });
    this._container(ev.parent_tool_use_id).append(el);
    this._renderText(el, ev.text || "");
  }

  _thinking(ev) {
    const body = h("div", { class: "md thinking-body" });
    renderMarkdown(body, ev.text || "");
    const preview = (ev.text || "").replace(/\s+/g, " ").slice(0, 90);
    const el = h("details", { class: "thinking" },
      h("summary", {}, icon("brain", { size: 14 }), h("span", { class: "thinking-label", text: "Thinking" }),
        h("span", { class: "thinking-preview", text: preview })),
      body);
    this._container(ev.parent_tool_use_id).append(el);
  }

  _permission(ev) {
    const state = h("span", { class: "permission-state muted small" });
    const actions = h("div", { class: "row permission-actions" });
    const answer = async (decision) => {
      for (const b of actions.querySelectorAll("button")) b.disabled = true;
      state.textContent = "Sending…";
      try {
        await this.hooks.onPermission(ev.request_id, decision);
        el.dataset.state = decision;
        actions.remove();
        state.textContent = { allow: "Allowed once", allow_session: "Allowed for this session", deny: "Denied" }[decision];
      } catch (err) {
        for (const b of actions.querySelectorAll("button")) b.disabled = false;
        state.textContent = err.message;
      }
    };
    if (this.hooks.onPermission) {
      actions.append(
        button("Allow", { icon: "check", cls: "btn btn-sm btn-primary", onClick: () => answer("allow") }),
        button("Allow for session", { cls: "btn btn-sm", onClick: () => answer("allow_session") }),
        button("Deny", { icon: "x", cls: "btn btn-sm btn-danger-soft", onClick: () => answer("deny") }));
    }
    const el = h("div", { class: "alert alert-warn permission", "data-request-id": ev.request_id || "", "data-state": "pending" }, icon("lock"),
      h("div", { class: "permission-main" },
        h("strong", { text: `The agent asks to use ${ev.tool_name}` }),
        codeBlock(JSON.stringify(ev.input || {}, null, 2), "json"),
        actions, state));
    this._container(ev.parent_tool_use_id).append(el);
  }

  _error(ev) {
    this._finishLive();
    const el = h("div", { class: "alert alert-error turn-error", role: "alert" }, icon("alert"),
      h("div", {}, h("strong", { text: errorTitle(ev.code) }), h("p", { text: ev.message || "" }),
        ev.code ? h("code", { class: "muted", text: ev.code }) : null));
    this._ensureTurn().body.append(el);
  }

  _result(ev) {
    this._finishLive();
    const usage = ev.usage || {};
    const input = (usage.input_tokens || 0) + (usage.cache_read_input_tokens || 0) + (usage.cache_creation_input_tokens || 0);
    const output = usage.output_tokens || 0;
    // The CLI reports total_cost_usd as a running total for its process; a smaller value
    // means the process restarted (machine woken) and the count began again.
    const cumulative = Number(ev.total_cost_usd || 0);
    const turnCost = cumulative >= this.prevCumulativeCost ? cumulative - this.prevCumulativeCost : cumulative;
    this.prevCumulativeCost = cumulative;
    this.totals.turns += 1;
    this.totals.cost += turnCost;
    this.totals.input += input;
    this.totals.output += output;
    const turn = this._ensureTurn();
    const ok = !ev.is_error && (ev.subtype === "success" || !ev.subtype);
    fill(turn.footer, 
      h("span", { class: ["result-badge", ok ? "ok" : "bad"] }, icon(ok ? "check" : "alert", { size: 12 }),
        h("span", { text: ok ? "Done" : resultLabel(ev.subtype) })),
      stat("clock", fmt.duration(ev.duration_ms), "Duration"),
      stat("message", fmt.plural(ev.num_turns || 0, "step"), "Model round trips"),
      stat("hash", `${fmt.tokens(input)} in · ${fmt.tokens(output)} out`, "Tokens this turn"),
      stat("coins", fmt.cost(turnCost), "Cost of this turn"));
    turn.footer.classList.add("has-result");
    if (!ok && ev.errors && ev.errors.length) {
      turn.footer.append(h("details", { class: "result-errors" }, h("summary", { text: "Details" }),
        h("pre", { text: ev.errors.join("\n") })));
    }
    if (this.hooks.onUsage) this.hooks.onUsage({ ...this.totals });
  }

  _done() {
    this._finishLive();
    for (const p of this.el.querySelectorAll('.permission[data-state="pending"]')) {
      p.dataset.state = "expired";
      p.querySelector(".permission-actions")?.remove();
      p.querySelector(".permission-state").textContent = "No longer waiting for an answer";
    }
    for (const tool of this.tools.values()) {
      if (!tool.finished) this._setToolStatus(tool, "stopped");
    }
    this.setWorking(false);
    if (this.touched.size && this.hooks.onFilesTouched) {
      this.hooks.onFilesTouched([...this.touched]);
      this.touched.clear();
    }
  }

  // ---------------------------------------------------------------- tools
  _toolUse(ev) {
    const name = ev.name || "tool";
    const input = ev.input || {};
    const tool = { id: ev.id, name, input, finished: false };
    const container = this._container(ev.parent_tool_use_id);
    if (TODO_TOOLS.has(name)) {
      tool.card = h("div", { class: "tool-compact", "data-tool-name": name, "data-tool-id": ev.id },
        icon("list-checks", { size: 14 }), h("span", { text: todoSummary(name, input) }));
      tool.status = h("span", { class: "tool-status" }, spinner(12));
      tool.card.append(tool.status);
      container.append(tool.card);
      this.tools.set(ev.id, tool);
      return;
    }
    const spec = describeTool(name, input);
    tool.status = h("span", { class: "tool-status running", title: "Running" }, spinner(14));
    const summary = h("summary", { class: "tool-head" },
      h("span", { class: "tool-icon", "aria-hidden": "true" }, icon(spec.icon, { size: 14 })),
      h("span", { class: "tool-name", text: spec.label }),
      spec.summary ? h("code", { class: "tool-summary", text: spec.summary, title: spec.summary }) : null,
      tool.status);
    tool.body = h("div", { class: "tool-body" }, spec.body || null);
    tool.card = h("details", { class: ["tool", `tool-${spec.kind}`], "data-tool-name": name, "data-tool-id": ev.id,
      open: spec.open }, summary, tool.body);
    if (SUBAGENT_TOOLS.has(name)) {
      tool.nested = h("div", { class: "subagent-log", "aria-label": "Sub-agent activity" });
      tool.body.append(h("div", { class: "subagent" }, tool.nested));
    }
    container.append(tool.card);
    this.tools.set(ev.id, tool);
    if (this.hooks.onGrow) this.hooks.onGrow();
  }

  _toolResult(ev) {
    let tool = this.tools.get(ev.tool_use_id);
    if (!tool) {
      // A result whose call we never saw (e.g. transcript trimmed): show it on its own.
      this._toolUse({ id: ev.tool_use_id, name: "tool", input: {}, parent_tool_use_id: ev.parent_tool_use_id });
      tool = this.tools.get(ev.tool_use_id);
    }
    tool.finished = true;
    this._setToolStatus(tool, ev.is_error ? "error" : "ok");
    if (TODO_TOOLS.has(tool.name)) return;
    const output = String(ev.output ?? "");
    if (tool.name === "Write" && !ev.is_error) {
      tool.body.append(h("p", { class: "tool-note", text: firstLine(output) }));
    } else if ((tool.name === "Edit" || tool.name === "MultiEdit") && !ev.is_error) {
      tool.body.append(h("p", { class: "tool-note", text: firstLine(output) }));
    } else if (SUBAGENT_TOOLS.has(tool.name)) {
      const result = h("div", { class: "md subagent-result" });
      renderMarkdown(result, output);
      tool.body.append(h("div", { class: "tool-section-label", text: ev.is_error ? "Sub-agent failed" : "Sub-agent report" }), result);
    } else {
      tool.body.append(outputBlock(output, ev.is_error));
    }
    if (ev.is_error) tool.card.open = true;
    if (FILE_TOOLS.has(tool.name) || FILE_TOOLS.has(baseName(tool.name))) {
      const path = tool.input.file_path || tool.input.notebook_path || "";
      this.touched.add(fmt.workspacePath(path) || "");
      if (this.hooks.onFilesTouched) {
        this.hooks.onFilesTouched([...this.touched]);
        this.touched.clear();
      }
    }
    if (this.hooks.onGrow) this.hooks.onGrow();
  }

  _setToolStatus(tool, state) {
    const iconName = { ok: "check", error: "x", stopped: "square" }[state];
    const title = { ok: "Finished", error: "Failed", stopped: "Stopped before finishing" }[state];
    fill(tool.status, icon(iconName, { size: 14 }));
    tool.status.className = `tool-status ${state}`;
    tool.status.title = title;
    tool.status.setAttribute("aria-label", title);
    tool.card.classList.toggle("is-error", state === "error");
  }
}

function baseName(name) {
  return name.startsWith("mcp__") ? "mcp" : name;
}

function stat(iconName, text, label) {
  return h("span", { class: "stat", title: label }, icon(iconName, { size: 12 }), h("span", { text }));
}

function firstLine(text) {
  return String(text).split("\n")[0].slice(0, 300);
}

function errorTitle(code) {
  const known = {
    machine_unreachable: "The agent's machine stopped responding",
    agent_failed: "The agent failed",
    turn_failed: "The turn failed",
    machine_start_failed: "Could not start the machine",
  };
  if (known[code]) return known[code];
  if (code && code.startsWith("model_")) return "The model returned an error";
  return "Error";
}

function resultLabel(subtype) {
  return {
    error_max_turns: "Stopped: turn limit reached",
    error_max_budget_usd: "Stopped: budget reached",
    error_during_execution: "Stopped",
  }[subtype] || "Finished with an error";
}

function todoSummary(name, input) {
  if (name === "TodoWrite") return `Task list updated (${(input.todos || []).length} tasks)`;
  if (name === "TaskCreate") return `Task added: ${input.subject || input.content || input.description || ""}`;
  if (name === "TaskUpdate") return `Task ${input.taskId || input.id || ""} → ${String(input.status || "updated").replace("_", " ")}`;
  return "Checked the task list";
}

function outputBlock(output, isError) {
  const text = output.length ? output : "(no output)";
  const pre = h("pre", { class: ["tool-output", isError && "is-error"], tabindex: "0" });
  pre.append(h("code", { text }));
  const lines = text.split("\n").length;
  const wrap = h("div", { class: "output-wrap" }, h("div", { class: "tool-section-label", text: isError ? "Error" : "Output" }), pre);
  if (lines > 14) {
    pre.classList.add("clamped");
    const toggle = button(`Show all ${lines} lines`, { cls: "btn btn-xs btn-ghost output-toggle" });
    toggle.addEventListener("click", () => {
      const clamped = pre.classList.toggle("clamped");
      toggle.querySelector("span").textContent = clamped ? `Show all ${lines} lines` : "Show less";
    });
    wrap.append(toggle);
  }
  return wrap;
}

function codeBlock(text, language, cls = "") {
  const code = h("code", {});
  highlightInto(code, text, language || "plaintext");
  return h("pre", { class: ["code-block", cls], tabindex: "0" }, code);
}

function describeTool(name, input) {
  const path = fmt.workspacePath(input.file_path || input.notebook_path || input.path || "");
  switch (name) {
    case "Bash": {
      const cmd = String(input.command || "");
      return {
        kind: "bash", icon: "terminal", label: "Bash", summary: cmd.split("\n")[0], open: true,
        body: [
          input.description ? h("p", { class: "tool-desc", text: input.description }) : null,
          h("pre", { class: "tool-command", tabindex: "0" }, h("span", { class: "prompt", "aria-hidden": "true", text: "$ " }),
            h("code", { text: cmd })),
          input.run_in_background ? h("p", { class: "tool-note", text: "Runs in the background" }) : null,
        ],
      };
    }
    case "BashOutput":
    case "KillShell":
      return { kind: "bash", icon: "terminal", label: name, summary: input.bash_id || input.shell_id || "", open: false };
    case "Read":
      return { kind: "read", icon: "eye", label: "Read", summary: path, open: false,
        body: input.offset || input.limit ? h("p", { class: "tool-note", text: `Lines ${input.offset || 1}–${(input.offset || 1) + (input.limit || 0)}` }) : null };
    case "Write":
      return { kind: "write", icon: "file-plus", label: "Write", summary: path, open: true,
        body: [h("div", { class: "tool-section-label", text: `${path} · ${fmt.plural(String(input.content || "").split("\n").length, "line")}` }),
          codeBlock(String(input.content || ""), languageFor(path), "clamped-code")] };
    case "Edit":
      return { kind: "edit", icon: "file-edit", label: "Edit", summary: path, open: true,
        body: [input.replace_all ? h("p", { class: "tool-note", text: "Replace all occurrences" }) : null,
          diffView(String(input.old_string || ""), String(input.new_string || ""))] };
    case "MultiEdit":
      return { kind: "edit", icon: "file-edit", label: "MultiEdit", summary: `${path} · ${fmt.plural((input.edits || []).length, "edit")}`, open: true,
        body: (input.edits || []).map((e) => diffView(String(e.old_string || ""), String(e.new_string || ""))) };
    case "NotebookEdit":
      return { kind: "edit", icon: "file-edit", label: "NotebookEdit", summary: path, open: false,
        body: codeBlock(String(input.new_source || ""), "python") };
    case "Glob":
      return { kind: "search", icon: "search", label: "Glob", summary: `${input.pattern || ""}${input.path ? ` in ${fmt.workspacePath(input.path)}` : ""}`, open: false };
    case "Grep":
      return { kind: "search", icon: "search", label: "Grep", summary: `${input.pattern || ""}${input.path ? ` in ${fmt.workspacePath(input.path)}` : ""}`, open: false };
    case "LS":
      return { kind: "search", icon: "folder", label: "LS", summary: path, open: false };
    case "WebFetch":
      return { kind: "web", icon: "globe", label: "WebFetch", summary: input.url || "", open: false,
        body: input.prompt ? h("p", { class: "tool-desc", text: input.prompt }) : null };
    case "WebSearch":
      return { kind: "web", icon: "search", label: "WebSearch", summary: input.query || "", open: false };
    case "Task":
    case "Agent":
      return {
        kind: "task", icon: "bot", label: `Sub-agent${input.subagent_type ? ` · ${input.subagent_type}` : ""}`,
        summary: input.description || "", open: true,
        body: input.prompt ? h("details", { class: "subagent-prompt" }, h("summary", { text: "Brief" }),
          h("div", { class: "prompt-box", text: input.prompt })) : null,
      };
    default: {
      if (name.startsWith("mcp__")) {
        const [, server, tool] = name.split("__");
        return { kind: "mcp", icon: "plug", label: `MCP · ${server}`, summary: tool || "", open: false,
          body: jsonBlock(input) };
      }
      return { kind: "generic", icon: "wrench", label: name, summary: "", open: false,
        body: Object.keys(input).length ? jsonBlock(input) : null };
    }
  }
}

function jsonBlock(value) {
  return [h("div", { class: "tool-section-label", text: "Input" }), codeBlock(JSON.stringify(value, null, 2), "json")];
}

/** A line diff (LCS) of an Edit's old and new strings. */
export function diffView(oldText, newText) {
  const a = oldText.split("\n");
  const b = newText.split("\n");
  const rows = [];
  if (a.length * b.length > 250_000) {
    a.forEach((l) => rows.push(["del", l]));
    b.forEach((l) => rows.push(["add", l]));
  } else {
    const n = a.length;
    const m = b.length;
    const dp = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
    for (let i = n - 1; i >= 0; i -= 1) {
      for (let j = m - 1; j >= 0; j -= 1) {
        dp[i][j] = a[i] === b[j] ? dp[i + 1][j + 1] + 1 : Math.max(dp[i + 1][j], dp[i][j + 1]);
      }
    }
    let i = 0;
    let j = 0;
    while (i < n && j < m) {
      if (a[i] === b[j]) { rows.push(["ctx", a[i]]); i += 1; j += 1; } else if (dp[i + 1][j] >= dp[i][j + 1]) { rows.push(["del", a[i]]); i += 1; } else { rows.push(["add", b[j]]); j += 1; }
    }
    while (i < n) { rows.push(["del", a[i]]); i += 1; }
    while (j < m) { rows.push(["add", b[j]]); j += 1; }
  }
  const added = rows.filter((r) => r[0] === "add").length;
  const removed = rows.filter((r) => r[0] === "del").length;
  return h("div", { class: "diff" },
    h("div", { class: "diff-stats" }, h("span", { class: "diff-add-count", text: `+${added}` }), h("span", { class: "diff-del-count", text: `−${removed}` })),
    h("pre", { class: "diff-body", tabindex: "0" }, rows.map(([kind, line]) =>
      h("span", { class: `diff-line diff-${kind}` }, h("span", { class: "diff-sign", "aria-hidden": "true", text: kind === "add" ? "+" : kind === "del" ? "−" : " " }),
        h("span", { class: "sr-only", text: kind === "add" ? "added: " : kind === "del" ? "removed: " : "" }), line || " "))));
}
