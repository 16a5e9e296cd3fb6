// A session: the chat timeline with live streaming, the task list and the workspace.
// A page refresh reloads the stored transcript and, if a turn is still running, resumes
// its stream with Last-Event-ID; a dropped connection does the same, with backoff.

import { api, filesPath, saveResponse, sessionPath, tokenMode } from "../api.js";
import { button, fill, h, icon, spinner } from "../dom.js";
import * as fmt from "../format.js";
import { forgetSession, getKey, onKeyChange, rememberSession } from "../store.js";
import { askForKey, errorBox, toast } from "../ui.js";
import { FilesPanel } from "./files.js";
import { Banner } from "./session/banner.js";
import { Composer } from "./session/composer.js";
import { SessionHeader } from "./session/header.js";
import { TurnStream } from "./session/stream.js";
import { WarningsNotice } from "./session/warnings.js";
import { TasksPanel } from "./tasks.js";
import { Timeline } from "./timeline.js";

const PANES = [["chat", "message", "Chat"], ["tasks", "list-checks", "Tasks"], ["files", "folder", "Files"]];

/** Chat, tasks and files as tabs on a narrow screen (side by side on a wide one). */
class PaneTabs {
  constructor(layout, { onShow }) {
    this.layout = layout;
    this.el = h("div", { class: "pane-tabs", role: "tablist", "aria-label": "Session panes" },
      PANES.map(([p, iconName, label]) => h("button", { type: "button", role: "tab", class: "pane-tab", "data-pane": p,
        "aria-selected": p === "chat" ? "true" : "false", onclick: () => { this.show(p); onShow(p); } },
      icon(iconName, { size: 15 }), h("span", { text: label }), h("span", { class: "pane-badge", hidden: true }))));
  }

  show(pane) {
    this.layout.dataset.pane = pane;
    for (const t of this.el.querySelectorAll(".pane-tab")) t.setAttribute("aria-selected", String(t.dataset.pane === pane));
  }

  badge(pane, n) {
    const b = this.el.querySelector(`[data-pane="${pane}"] .pane-badge`);
    b.hidden = !n;
    b.textContent = n ? String(n) : "";
  }
}

/** The conversation's scroll: stays at the bottom while the user is there, else offers a jump. */
class ScrollPin {
  constructor(log) {
    this.log = log;
    this.pinned = true;
    this.jump = button("Jump to latest", { icon: "chevron", cls: "btn btn-sm jump", hidden: true, onClick: () => { log.scrollTop = log.scrollHeight; } });
    log.addEventListener("scroll", () => {
      this.pinned = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
      this.jump.hidden = this.pinned;
    });
  }

  follow() {
    if (this.pinned) this.log.scrollTop = this.log.scrollHeight;
    else this.jump.hidden = false;
  }

  toBottom() {
    this.pinned = true;
    this.log.scrollTop = this.log.scrollHeight;
  }
}

class ChatPage {
  constructor(root, sessionId, { meta }) {
    this.sessionId = sessionId;
    this.ac = new AbortController();
    this.running = false;
    this.log = h("div", { class: "timeline", role: "log", "aria-label": "Conversation", "aria-live": "polite", tabindex: "0" });
    this.scroll = new ScrollPin(this.log);
    this.banner = new Banner();
    this.warnings = new WarningsNotice();
    this.header = new SessionHeader(sessionId, { onExport: (f) => this.exportAs(f), onInterrupt: () => this.interrupt() });
    this.composer = new Composer({ demo: meta.demo, onSend: (text) => this.send(text) });
    this.tasks = new TasksPanel();
    this.files = new FilesPanel(sessionId, { maxUploadMb: meta.max_upload_mb || 50 });
    this.timeline = new Timeline(this.log, {
      onTodos: (todos) => { this.tasks.update(todos); this.tabs.badge("tasks", todos.filter((t) => t.status !== "completed").length); },
      onFilesTouched: (paths) => this.files.touched(paths),
      onStatus: (status) => this.header.setStatus(status),
      onUsage: (t) => this.header.showTotals(t),
      onGrow: () => this.scroll.follow(),
      onOpenFile: (path) => this.files.preview(path),
      onImages: (el) => this.hydrateImages(el),
      onPermission: (requestId, decision) => api(`/api/agents/${encodeURIComponent(sessionId)}/permissions/${encodeURIComponent(requestId)}`,
        { method: "POST", body: { decision } }),
    });
    this.stream = new TurnStream(sessionId, {
      onEvent: (ev) => this.timeline.handle(ev),
      onRunning: (on) => this.setRunning(on),
      onRefused: (err, text) => this.refused(err, text),
      onDetails: (d) => this.showDetails(d),
      catchUp: (after, signal) => this.catchUp(after, signal),
      lastSeq: () => this.timeline.lastSeq,
      banner: this.banner,
    });

    this.layout = h("div", { class: "chat-layout", "data-pane": "chat" });
    this.tabs = new PaneTabs(this.layout, { onShow: (p) => { if (p === "files") this.files.refresh(); } });
    this.layout.append(
      h("section", { class: "chat-main", "aria-label": "Chat" },
        this.header.el, this.tabs.el, this.banner.el, this.warnings.el,
        h("div", { class: "timeline-wrap" }, this.log, this.scroll.jump),
        this.composer.el),
      h("aside", { class: "side", "aria-label": "Tasks and files" }, this.tasks.el, this.files.el));
    root.append(this.layout);
    this.header.showTotals(this.timeline.totals);
    this.bindWindow();
    this.offKey = onKeyChange(() => { if (!this.running) this.load(); });
    this.load();
  }

  bindWindow() {
    const { signal } = this.ac;
    this.header.bindOutsideClicks(signal);
    window.addEventListener("online", () => { if (this.running && this.stream.idle) this.stream.follow(); }, { signal });
    // Dropping a file anywhere on the page must not navigate away from the session.
    const stopNav = (e) => { if (e.dataTransfer && [...e.dataTransfer.types].includes("Files")) e.preventDefault(); };
    window.addEventListener("dragover", stopNav, { signal });
    window.addEventListener("drop", stopNav, { signal });
  }

  setRunning(on) {
    this.running = on;
    this.header.setRunning(on);
    this.composer.setRunning(on);
    this.timeline.setWorking(on);
    if (on) this.header.setStatus("busy");
    else if (this.header.status === "busy") this.header.setStatus("running");
  }

  send(text) {
    if (this.banner.kind !== "reconnecting") this.banner.hide();
    this.timeline.addPendingUser(text);
    this.scroll.toBottom();
    return this.stream.send(text);
  }

  refused(err, text) {
    this.timeline.dropPendingUser();
    this.composer.restore(text);
    if (err.status === 401 || err.status === 403) this.keyProblem(err);
    else toast(err.message, { type: "error" });
  }

  async interrupt() {
    try {
      const r = await api(`/api/agents/${encodeURIComponent(this.sessionId)}/interrupt`, { method: "POST" });
      toast(r.interrupted ? "Interrupting the turn…" : "Nothing to interrupt", { timeout: 2500 });
    } catch (err) {
      toast(err.message, { type: "error" });
    }
  }

  async exportAs(format) {
    try {
      const resp = await api(`${sessionPath(this.sessionId)}/export?format=${format}`, { raw: true, headers: { Accept: "*/*" } });
      await saveResponse(resp, `agcluster-${fmt.shortId(this.sessionId)}.${format === "markdown" ? "md" : "json"}`);
    } catch (err) {
      toast(`Export failed: ${err.message}`, { type: "error" });
    }
  }

  /** Stored events after `after` (all pages of them). */
  async catchUp(after = 0, signal = this.ac.signal) {
    for (;;) {
      const data = await api(`${sessionPath(this.sessionId)}/events?after=${after}&limit=5000`, { signal });
      for (const ev of data.events) this.timeline.handle(ev);
      if (data.events.length < 5000) return;
      after = data.last_seq;
    }
  }

  showDetails(d) {
    this.header.describe(d);
    document.title = `${d.config_name || d.config_id} · AgCluster`;
    // status is where the machine is; busy says whether a turn runs on it.
    if (!this.running || d.status !== "running") this.header.setStatus(d.busy ? "busy" : d.status);
    this.warnings.show(d.warnings);
    if (d.status === "stopped" && !d.busy) this.banner.show("info", "This session's machine is stopped to save resources. Sending a message wakes it up; the conversation continues.");
    else if (d.status === "failed") this.banner.show("error", `The machine failed${d.status_detail ? `: ${d.status_detail}` : ""}. Sending a message tries to start it again.`);
    else if (this.banner.kind !== "reconnecting") this.banner.hide();
  }

  keyProblem(err) {
    fill(this.log, h("div", { class: "gate" },
      icon("lock", { size: 28 }),
      h("h2", { text: err && err.status === 403 ? "This key does not open this session" : "Enter the API key for this session" }),
      h("p", { class: "muted", text: "Sessions are protected by the Anthropic API key that launched them. The key stays in this tab." }),
      button("Enter API key", { icon: "key", cls: "btn btn-primary", onClick: () => askForKey("Enter the key that launched this session.") })));
    this.composer.hidden = true;
  }

  async load() {
    this.composer.hidden = false;
    if (!tokenMode() && !getKey()) {  // with accounts, the token opens the session
      this.keyProblem();
      return;
    }
    fill(this.log, h("div", { class: "loading-log" }, spinner(18), h("span", { text: "Loading the conversation…" })));
    try {
      const d = await api(sessionPath(this.sessionId), { signal: this.ac.signal });
      rememberSession(this.sessionId);
      this.timeline.reset();
      this.showDetails(d);
      await this.catchUp(0);
      if (this.timeline.isEmpty) {
        this.log.append(h("div", { class: "welcome" }, icon("sparkles", { size: 26 }),
          h("h2", { text: `${d.config_name || "Your agent"} is ready` }),
          h("p", { class: "muted", text: "Ask for something to be built, run or researched. Files the agent writes appear in the workspace panel; drop files there to share them." })));
      }
      this.scroll.toBottom();
      this.files.refresh();
      this.composer.focus();
      if (d.busy) this.stream.follow();
    } catch (err) {
      if (err.name === "AbortError") return;
      if (err.status === 401 || err.status === 403) return this.keyProblem(err);
      this.composer.hidden = true;
      if (err.status === 404) forgetSession(this.sessionId);
      fill(this.log, h("div", { class: "gate" }, errorBox(err, { title: err.status === 404 ? "Session not found" : "Could not open the session" }),
        h("div", { class: "row" }, h("a", { class: "btn", href: "#/sessions", text: "All sessions" }), h("a", { class: "btn btn-primary", href: "#/", text: "Launch a new agent" }))));
    }
  }

  async hydrateImages(el) {
    for (const img of el.querySelectorAll("img[data-ws-src]")) {
      const path = fmt.workspacePath(img.dataset.wsSrc).replace(/^\.\//, "");
      img.removeAttribute("data-ws-src");
      try {
        const resp = await api(`${filesPath(this.sessionId, path)}?raw=1`, { raw: true, headers: { Accept: "image/*" }, signal: this.ac.signal });
        img.src = URL.createObjectURL(await resp.blob());
      } catch {
        img.replaceWith(h("span", { class: "muted", text: `[image: ${path}]` }));
      }
    }
  }

  destroy() {
    this.stream.dispose();
    this.ac.abort();
    this.offKey();
    this.files.destroy();
    document.title = "AgCluster";
  }
}

export function mount(root, [sessionId], context) {
  const page = new ChatPage(root, sessionId, context);
  return () => page.destroy();
}
