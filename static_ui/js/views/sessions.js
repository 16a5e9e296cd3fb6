// Every session: status, preset, age, last activity, usage, machine resources (where the
// provider reports them and this tab holds the key), and open / interrupt / stop / delete.

import { api, sessionPath } from "../api.js";
import { button, fill, h, icon, spinner } from "../dom.js";
import * as fmt from "../format.js";
import { me } from "../account.js";
import { forgetSession, getKey, knownSessions, onKeyChange } from "../store.js";
import { confirmDialog, emptyState, errorBox, toast } from "../ui.js";

const REFRESH_MS = 10_000;
const FILTERS = [["all", "All"], ["live", "Live"], ["stopped", "Stopped"]];

class SessionsPage {
  constructor(root, { meta }) {
    // The server's session states (/ui/meta.json) decide which sessions have a machine up.
    this.live = new Set(meta.live_statuses || []);
    this.ac = new AbortController();
    this.sessions = [];
    this.resources = new Map();
    this.filter = "all";
    this.timer = null;
    this.count = h("span", { class: "count-badge" });
    this.refreshBtn = button("Refresh", { icon: "refresh", cls: "btn", onClick: () => this.load() });
    this.filters = h("div", { class: "seg", role: "radiogroup", "aria-label": "Filter sessions" },
      FILTERS.map(([value, label]) => h("button", { type: "button", role: "radio", class: "seg-btn", "data-filter": value,
        "aria-checked": String(value === this.filter), text: label, onclick: () => this.setFilter(value) })));
    this.body = h("div", { class: "sessions-body", "aria-live": "polite" }, h("div", { class: "loading-log" }, spinner(18), h("span", { text: "Loading sessions…" })));
    root.append(h("section", { class: "page" },
      h("div", { class: "page-head" },
        h("div", {}, h("h1", {}, "Sessions ", this.count),
          h("p", { class: "lead", text: "Every agent session on this server. Stop frees its machine and keeps its work (a message wakes it); Delete removes everything." })),
        h("div", { class: "row" }, this.refreshBtn, h("a", { class: "btn btn-primary", href: "#/" }, icon("rocket"), h("span", { text: "Launch" })))),
      h("div", { class: "toolbar" }, this.filters), this.body));
    this.offKey = onKeyChange(() => this.loadResources());
    document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible" && !this.timer) this.load(); },
      { signal: this.ac.signal });
    this.load();
  }

  setFilter(value) {
    this.filter = value;
    for (const b of this.filters.children) b.setAttribute("aria-checked", String(b.dataset.filter === value));
    this.render();
  }

  async load() {
    this.refreshBtn.classList.add("is-busy");
    try {
      const data = await api("/api/agents/sessions", { signal: this.ac.signal });
      this.sessions = (data.sessions || []).sort((a, b) => b.last_active_at - a.last_active_at);
      this.count.textContent = String(this.sessions.length);
      this.render();
      this.loadResources();
    } catch (err) {
      if (err.name === "AbortError") return;
      fill(this.body, errorBox(err, { title: "Could not list sessions" }));
    } finally {
      this.refreshBtn.classList.remove("is-busy");
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => { if (document.visibilityState === "visible") this.load(); else this.timer = null; }, REFRESH_MS);
  }

  /** CPU / memory come with a session's details, which need its key: only this tab's sessions. */
  async loadResources() {
    if (!getKey()) return;
    const mine = new Set(knownSessions());
    const wanted = this.sessions.filter((s) => mine.has(s.session_id) && this.live.has(s.status));
    await Promise.all(wanted.map(async (s) => {
      try {
        const d = await api(sessionPath(s.session_id), { signal: this.ac.signal });
        this.resources.set(s.session_id, { resources: d.resources, busy: d.busy });
      } catch {
        /* another key, or gone: leave the column empty */
      }
    }));
    if (wanted.length) this.render();
  }

  visible() {
    if (this.filter === "live") return this.sessions.filter((s) => this.live.has(s.status));
    if (this.filter === "stopped") return this.sessions.filter((s) => !this.live.has(s.status));
    return this.sessions;
  }

  render() {
    const list = this.visible();
    if (!this.sessions.length) {
      fill(this.body, emptyState({ iconName: "layers", title: "No sessions yet", text: "Launch an agent to start one.",
        action: h("a", { class: "btn btn-primary", href: "#/" }, icon("rocket"), h("span", { text: "Launch an agent" })) }));
      return;
    }
    if (!list.length) {
      fill(this.body, emptyState({ iconName: "list", title: "Nothing here", text: "No sessions match this filter." }));
      return;
    }
    const now = Date.now() / 1000;
    const mine = new Set(knownSessions());
    // An admin sees everyone's sessions: say whose each is. A member's are all their own.
    const owners = me().admin && list.some((s) => s.owner);
    const heads = ["Agent", owners ? "Owner" : null, "Status", "Age", "Last activity", "Usage", "Machine", ""].filter((t) => t !== null);
    const table = h("table", { class: "sessions-table" },
      h("thead", {}, h("tr", {}, heads.map((t) => h("th", { scope: "col", text: t })))),
      h("tbody", {}, list.map((s) => this.row(s, now, mine.has(s.session_id), owners))));
    fill(this.body, h("div", { class: "table-wrap card" }, table));
  }

  row(s, now, mine, owners) {
    const res = this.resources.get(s.session_id);
    const u = s.usage || {};
    const open = h("a", { class: "btn btn-sm", href: `#/session/${s.session_id}`, "aria-label": `Open ${s.config_name || s.config_id} session ${fmt.shortId(s.session_id)}` },
      icon("message", { size: 14 }), h("span", { text: "Open" }));
    const actions = [open];
    const busy = Boolean(s.busy || (res && res.busy));
    if (busy) actions.push(button("Interrupt", { icon: "pause", cls: "btn btn-sm", onClick: () => this.interrupt(s) }));
    if (this.live.has(s.status)) {
      actions.push(button("Stop", { icon: "square", cls: "btn btn-sm", "data-action": "stop",
        "aria-label": `Stop session ${fmt.shortId(s.session_id)}`, onClick: (e) => this.stop(s, e.currentTarget) }));
    }
    actions.push(button("Delete", { icon: "trash", cls: "btn btn-sm btn-danger-soft", "data-action": "delete",
      "aria-label": `Delete session ${fmt.shortId(s.session_id)}`, onClick: (e) => this.remove(s, e.currentTarget) }));
    return h("tr", { "data-session-id": s.session_id, "data-status": s.status },
      h("td", { "data-label": "Agent" },
        h("div", { class: "cell-agent" },
          h("strong", { text: s.config_name || s.config_id }),
          h("span", { class: "muted mono small", text: `${fmt.shortId(s.session_id)} · ${s.config_id}` }),
          mine ? h("span", { class: "badge badge-neutral small", title: "Launched from this tab", text: "this tab" }) : null)),
      owners ? h("td", { "data-label": "Owner", text: s.owner ? s.owner.name || fmt.shortId(s.owner.id) : "—" }) : null,
      h("td", { "data-label": "Status" },
        h("span", { class: "pill", "data-status": busy ? "busy" : s.status, text: busy ? "busy" : s.status }),
        s.status_detail ? h("p", { class: "muted small status-detail", text: s.status_detail, title: s.status_detail }) : null),
      h("td", { "data-label": "Age", title: fmt.dateTime(s.created_at), text: fmt.age(s.created_at, now) }),
      h("td", { "data-label": "Last activity", title: fmt.dateTime(s.last_active_at), text: fmt.ago(s.last_active_at, now) }),
      h("td", { "data-label": "Usage" },
        h("div", { class: "cell-usage" },
          h("span", { text: fmt.plural(s.turns || 0, "turn") }),
          h("span", { class: "muted small", text: `${fmt.tokens((u.input_tokens || 0) + (u.cache_read_tokens || 0) + (u.cache_write_tokens || 0))} in · ${fmt.tokens(u.output_tokens || 0)} out` }),
          h("span", { class: "muted small", text: fmt.cost(u.cost_usd || 0) }))),
      h("td", { "data-label": "Machine" }, machineCell(s, res)),
      h("td", { class: "cell-actions", "data-label": "" }, h("div", { class: "row" }, actions)));
  }

  async interrupt(s) {
    try {
      const r = await api(`/api/agents/${encodeURIComponent(s.session_id)}/interrupt`, { method: "POST" });
      toast(r.interrupted ? "Interrupting…" : "Nothing to interrupt", { timeout: 2500 });
    } catch (err) {
      toast(err.message, { type: "error" });
    }
  }

  async stop(s, btn) {
    btn.disabled = true;
    try {
      await api(`${sessionPath(s.session_id)}/stop`, { method: "POST" });
      toast(`Session ${fmt.shortId(s.session_id)} stopped; its next message wakes it`, { type: "success" });
      s.status = "stopped";
      s.status_detail = "stopped by the user";
      this.resources.delete(s.session_id); // its machine no longer uses any
      this.render();
    } catch (err) {
      btn.disabled = false;
      toast(err.status === 401 || err.status === 403 ? "This tab's API key does not open that session." : err.message, { type: "error" });
    }
  }

  async remove(s, btn) {
    const ok = await confirmDialog({
      title: "Delete this session?",
      message: `${s.config_name || s.config_id} (${fmt.shortId(s.session_id)}): its machine, workspace and transcript are removed. Download anything you need first.`,
      confirmLabel: "Delete session",
      danger: true,
    });
    if (!ok) return;
    btn.disabled = true;
    try {
      await api(sessionPath(s.session_id), { method: "DELETE" });
      forgetSession(s.session_id);
      toast(`Session ${fmt.shortId(s.session_id)} deleted`, { type: "success" });
      this.sessions = this.sessions.filter((x) => x.session_id !== s.session_id);
      this.count.textContent = String(this.sessions.length);
      this.render();
    } catch (err) {
      btn.disabled = false;
      toast(err.status === 401 || err.status === 403 ? "This tab's API key does not open that session." : err.message, { type: "error" });
    }
  }

  destroy() {
    this.ac.abort();
    clearTimeout(this.timer);
    this.offKey();
  }
}

function machineCell(s, res) {
  const r = res && res.resources;
  const lines = [h("span", { class: "muted small", text: s.provider })];
  if (r) {
    if (r.cpu_percent !== null && r.cpu_percent !== undefined) lines.push(h("span", { class: "small", text: `CPU ${Math.round(r.cpu_percent)}%` }));
    if (r.memory_used_mb !== null && r.memory_used_mb !== undefined) {
      lines.push(h("span", { class: "small", text: `RAM ${fmt.bytes(r.memory_used_mb * 1024 * 1024)}${r.memory_limit_mb ? ` / ${fmt.bytes(r.memory_limit_mb * 1024 * 1024)}` : ""}` }));
    }
    if (r.disk_used_mb !== null && r.disk_used_mb !== undefined) lines.push(h("span", { class: "small", text: `Disk ${r.disk_used_mb > 0 ? fmt.bytes(r.disk_used_mb * 1e6) : "< 10 KB"}` }));
  }
  return h("div", { class: "cell-machine" }, lines);
}

export function mount(root, _params, context) {
  const page = new SessionsPage(root, context);
  return () => page.destroy();
}
