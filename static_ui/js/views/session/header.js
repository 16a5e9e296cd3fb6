// The session's header: back link, title and status, id, usage totals, export and interrupt.

import { button, fill, h, icon } from "../../dom.js";
import * as fmt from "../../format.js";
import { toast } from "../../ui.js";

export class SessionHeader {
  constructor(sessionId, { onExport, onInterrupt }) {
    this.title = h("h1", { class: "chat-title", text: "Session" });
    this.pill = h("span", { class: "pill", "data-status": "starting", text: "loading" });
    this.config = h("span", { class: "chat-config muted" });
    this.totals = h("div", { class: "totals", "aria-label": "Session usage" });
    this.interruptBtn = button("Interrupt", { icon: "square", cls: "btn btn-danger-soft", hidden: true, onClick: () => this.interrupt(onInterrupt) });
    this.exportMenu = h("details", { class: "menu" },
      h("summary", { class: "btn btn-ghost btn-sm", "aria-label": "Export the conversation", title: "Export the conversation" }, icon("download"), h("span", { class: "hide-sm", text: "Export" })),
      h("div", { class: "menu-list", role: "menu" },
        button("Markdown (.md)", { icon: "file-text", cls: "menu-item", role: "menuitem", onClick: () => this.export(onExport, "markdown") }),
        button("JSON (.json)", { icon: "file", cls: "menu-item", role: "menuitem", onClick: () => this.export(onExport, "json") })));
    const idChip = button(fmt.shortId(sessionId), { icon: "copy", cls: "btn btn-xs btn-ghost mono", title: "Copy the session id",
      onClick: async () => { try { await navigator.clipboard.writeText(sessionId); toast("Session id copied", { timeout: 1500 }); } catch { /* no clipboard */ } } });
    this.el = h("header", { class: "chat-head" },
      h("div", { class: "chat-head-left" },
        h("a", { class: "btn-icon", href: "#/sessions", "aria-label": "All sessions", title: "All sessions" }, icon("chevron", { cls: "flip" })),
        h("div", { class: "chat-ident" },
          h("div", { class: "chat-title-row" }, this.title, this.pill),
          h("div", { class: "chat-sub" }, idChip, this.config))),
      h("div", { class: "chat-head-right" }, this.totals, this.exportMenu, this.interruptBtn));
  }

  /** Closes the export menu on a click elsewhere, for as long as `signal` lives. */
  bindOutsideClicks(signal) {
    document.addEventListener("click", (e) => { if (!this.exportMenu.contains(e.target)) this.exportMenu.open = false; }, { signal });
  }

  describe(d) {
    this.title.textContent = d.config_name || d.config_id;
    this.config.textContent = `${d.config_id} · ${d.provider}`;
  }

  get status() {
    return this.pill.dataset.status;
  }

  setStatus(status) {
    this.pill.dataset.status = status;
    this.pill.textContent = status;
  }

  setRunning(on) {
    this.interruptBtn.hidden = !on;
  }

  showTotals(t) {
    fill(this.totals,
      h("span", { class: "stat", title: "Turns" }, icon("message", { size: 13 }), h("span", { text: fmt.plural(t.turns, "turn") })),
      h("span", { class: "stat", title: "Tokens in / out" }, icon("hash", { size: 13 }), h("span", { text: `${fmt.tokens(t.input)} in · ${fmt.tokens(t.output)} out` })),
      h("span", { class: "stat stat-cost", title: "Session cost" }, icon("coins", { size: 13 }), h("span", { text: fmt.cost(t.cost) })));
  }

  async export(onExport, format) {
    this.exportMenu.open = false;
    await onExport(format);
  }

  async interrupt(onInterrupt) {
    this.interruptBtn.disabled = true;
    try {
      await onInterrupt();
    } finally {
      this.interruptBtn.disabled = false;
    }
  }
}
