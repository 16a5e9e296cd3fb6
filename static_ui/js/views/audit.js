// The audit log (admins): who launched, deleted, shared, created users and tokens, and
// every refusal, newest first, filtered by action or actor, sortable by any column.

import { api } from "../api.js";
import { me } from "../account.js";
import { button, fill, h, spinner } from "../dom.js";
import * as fmt from "../format.js";
import { SortableTable } from "../table.js";
import { emptyState, errorBox } from "../ui.js";

const LIMIT = 500;

class AuditPage {
  constructor(root) {
    this.ac = new AbortController();
    this.action = h("input", { class: "input input-sm", id: "audit-action", placeholder: "e.g. token.create", list: "audit-actions",
      spellcheck: "false", autocomplete: "off" });
    this.actions = h("datalist", { id: "audit-actions" });
    this.actor = h("select", { class: "input input-sm", id: "audit-actor" }, h("option", { value: "", text: "Anyone" }));
    const apply = (e) => { e.preventDefault(); this.load(); };
    this.count = h("span", { class: "count-badge" });
    this.table = new SortableTable({
      label: "Audit log",
      sortKey: "ts",
      rowKey: (e) => String(e.id),
      columns: [
        { key: "ts", label: "When", numeric: true, render: (e) => h("span", { title: fmt.dateTime(e.ts), text: fmt.dateTime(e.ts) }) },
        { key: "actor_name", label: "Actor", value: (e) => e.actor_name || e.actor || "",
          render: (e) => h("span", { title: e.actor || "", text: e.actor_name || e.actor || "anonymous" }) },
        { key: "action", label: "Action", render: (e) => h("code", { text: e.action }) },
        { key: "target", label: "Target", render: (e) => h("span", { class: "mono small audit-target", title: e.target || "", text: e.target || "" }) },
        { key: "outcome", label: "Outcome", render: (e) => h("span", { class: "pill", "data-status": e.outcome === "ok" ? "running" : "failed", text: e.outcome }) },
        { key: "details", label: "Details", sortable: false, render: (e) => h("span", { class: "mono small audit-details", text: details(e.details) }) },
      ],
    });
    this.body = h("div", {}, h("div", { class: "loading-log" }, spinner(18), h("span", { text: "Loading the audit log…" })));
    root.append(h("section", { class: "page page-wide" },
      h("div", { class: "page-head" },
        h("div", {}, h("h1", {}, "Audit log ", this.count),
          h("p", { class: "lead", text: `Every launch, delete, share, user and token change, and every refusal; the newest ${LIMIT}.` }))),
      me().admin ? h("form", { class: "toolbar audit-filters", onsubmit: apply, "aria-label": "Filter the audit log" },
        h("label", { for: "audit-action", class: "label", text: "Action" }), this.action, this.actions,
        h("label", { for: "audit-actor", class: "label", text: "Actor" }), this.actor,
        button("Filter", { icon: "search", cls: "btn btn-sm", type: "submit" })) : null,
      this.body));
    if (!me().admin) {
      fill(this.body, emptyState({ iconName: "shield", title: "Administrators only",
        text: me().auth_mode === "token" ? "The audit log is for admins of this server."
          : "With AUTH_MODE=none the audit log is open only to this machine's operator (AGCLUSTER_LOCAL_ADMIN=1, from loopback)." }));
      return;
    }
    this.actor.addEventListener("change", () => this.load());
    this.load();
  }

  async load() {
    const query = new URLSearchParams({ limit: String(LIMIT) });
    if (this.action.value.trim()) query.set("action", this.action.value.trim());
    if (this.actor.value) query.set("actor", this.actor.value);
    try {
      const data = await api(`/api/audit?${query}`, { signal: this.ac.signal });
      this.count.textContent = String(data.total);
      this.learn(data.entries);
      this.table.setRows(data.entries);
      fill(this.body, data.entries.length ? this.table.el : emptyState({ iconName: "list", title: "Nothing here", text: "No entries match." }));
    } catch (err) {
      if (err.name !== "AbortError") fill(this.body, errorBox(err, { title: "Could not read the audit log" }));
    }
  }

  /** Offer the actions and actors seen so far as filters. */
  learn(entries) {
    const known = new Set([...this.actions.children].map((o) => o.value));
    for (const e of entries) {
      if (!known.has(e.action)) {
        known.add(e.action);
        this.actions.append(h("option", { value: e.action }));
      }
    }
    const actors = new Set([...this.actor.options].map((o) => o.value));
    for (const e of entries) {
      if (e.actor && !actors.has(e.actor)) {
        actors.add(e.actor);
        this.actor.append(h("option", { value: e.actor, text: e.actor_name || e.actor }));
      }
    }
  }

  destroy() {
    this.ac.abort();
  }
}

function details(value) {
  const entries = Object.entries(value || {});
  return entries.map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" ");
}

export function mount(root) {
  const page = new AuditPage(root);
  return () => page.destroy();
}
