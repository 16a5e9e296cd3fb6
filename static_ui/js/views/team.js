// The team page (AUTH_MODE=token): everyone's own API tokens (create → shown once with a
// copy button, revoke with confirmation); for admins, the members (add one, give them a
// token to sign in with) and every token on the server.

import { api, tokenMode } from "../api.js";
import { me } from "../account.js";
import { button, fill, h, icon, spinner } from "../dom.js";
import * as fmt from "../format.js";
import { setToken } from "../store.js";
import { SortableTable } from "../table.js";
import { confirmDialog, emptyState, errorBox, formDialog, modal, toast } from "../ui.js";

/** The one time a token is visible: a read-only field, a copy button, and a plain warning. */
export function showNewToken(issued, { forSomeoneElse = false } = {}) {
  const field = h("input", { class: "input mono token-value", readonly: true, value: issued.token, "aria-label": "New token",
    spellcheck: "false", autocomplete: "off" });
  const copy = button("Copy", { icon: "copy", cls: "btn btn-primary", "data-action": "copy-token", onClick: async () => {
    field.select();
    try {
      await navigator.clipboard.writeText(issued.token);
      toast("Token copied", { type: "success", timeout: 1500 });
    } catch {
      toast("Copy it from the field (it is selected).", { timeout: 3000 });
    }
  } });
  const done = button("Done", { cls: "btn", onClick: () => m.close("done") });
  const m = modal({
    title: forSomeoneElse ? `A token for ${issued.user}` : "Your new token",
    cls: "token-dialog",
    content: h("div", { class: "form-stack" },
      h("div", { class: "alert alert-warn", role: "note" }, icon("alert"),
        h("p", { text: "Copy it now: it is shown only this once. The server keeps only its hash." })),
      h("div", { class: "key-row" }, field, copy),
      h("p", { class: "muted small", text: forSomeoneElse
        ? `Give it to ${issued.user} privately; it signs them in to this dashboard and the API (Authorization: Bearer).`
        : "Use it as 'Authorization: Bearer …' with the API, AGCLUSTER_TOKEN for agc, or to sign in here." })),
    actions: [done],
  });
  field.select();
  return m.closed;
}

/** A table of tokens with a Revoke button each; `owners` adds the user column. */
class TokenTable {
  constructor({ owners = false, label, onChange }) {
    this.onChange = onChange;
    const columns = [
      { key: "prefix", label: "Token", render: (t) => h("span", { class: "row" }, h("code", { text: `${t.prefix}…` }),
        t.current ? h("span", { class: "badge badge-neutral small", title: "This tab is signed in with it", text: "this tab" }) : null) },
      owners ? { key: "user", label: "User" } : null,
      { key: "created_at", label: "Created", numeric: true, render: (t) => h("span", { title: fmt.dateTime(t.created_at), text: fmt.ago(t.created_at) }) },
      // Recorded at most once a minute per token: enough to spot one nothing uses any more.
      { key: "last_used_at", label: "Last used", numeric: true, value: (t) => t.last_used_at || 0,
        render: (t) => (t.last_used_at ? h("span", { title: fmt.dateTime(t.last_used_at), text: fmt.ago(t.last_used_at) }) : h("span", { class: "muted", text: "never" })) },
      { key: "active", label: "Status", value: (t) => (t.active ? 1 : 0),
        render: (t) => h("span", { class: "pill", "data-status": t.active ? "running" : "stopped", text: t.active ? "active" : "revoked",
          title: t.revoked_at ? `Revoked ${fmt.dateTime(t.revoked_at)}` : "" }) },
      { key: "actions", label: "", sortable: false, cls: "cell-actions", render: (t) => (t.active
        ? button("Revoke", { icon: "trash", cls: "btn btn-sm btn-danger-soft", "data-action": "revoke", "aria-label": `Revoke token ${t.prefix}`,
          onClick: (e) => this.revoke(t, e.currentTarget) }) : null) },
    ].filter(Boolean);
    this.table = new SortableTable({ columns, sortKey: "created_at", label, rowKey: (t) => t.id });
    this.el = this.table.el;
  }

  set(tokens) {
    this.table.setRows(tokens);
  }

  async revoke(token, btn) {
    const mine = token.user_id === me().user?.id;
    const ok = await confirmDialog({
      title: "Revoke this token?",
      message: token.current
        ? `${token.prefix}… is the token this tab is signed in with. It stops working at once and this tab signs out.`
        : `${token.prefix}…${mine ? "" : ` (${token.user})`} stops working at once: every program that uses it is refused.`,
      confirmLabel: "Revoke token",
      danger: true,
    });
    if (!ok) return;
    btn.disabled = true;
    try {
      await api(`/api/tokens/${encodeURIComponent(token.id)}`, { method: "DELETE" });
      toast(`Token ${token.prefix}… revoked`, { type: "success" });
      if (token.current) {
        setToken("");
        return;
      }
      this.onChange();
    } catch (err) {
      btn.disabled = false;
      toast(err.message, { type: "error" });
    }
  }
}

class MyTokens {
  constructor({ onChange }) {
    this.table = new TokenTable({ label: "Your API tokens", onChange });
    this.status = h("div", { "aria-live": "polite" });
    this.el = h("section", { class: "section", "aria-labelledby": "my-tokens-h" },
      h("div", { class: "section-head" },
        h("div", {}, h("h2", { id: "my-tokens-h", text: "Your API tokens" }),
          h("p", { class: "muted small", text: "For the API, agc and this dashboard. Revoke one you no longer use." })),
        button("New token", { icon: "plus", cls: "btn btn-primary btn-sm", "data-action": "new-token", onClick: () => this.create(onChange) })),
      this.status, this.table.el);
  }

  set(tokens) {
    this.table.set(tokens);
  }

  async create(onChange) {
    try {
      const issued = await api("/api/tokens", { method: "POST" });
      await showNewToken(issued);
      onChange();
    } catch (err) {
      fill(this.status, errorBox(err, { title: "Could not create a token" }));
    }
  }
}

class Members {
  constructor({ onChange }) {
    this.onChange = onChange;
    this.status = h("div", { "aria-live": "polite" });
    this.table = new SortableTable({
      label: "Members",
      sortKey: "name",
      descending: false,
      rowKey: (u) => u.id,
      columns: [
        { key: "name", label: "Name", render: (u) => h("strong", { text: u.name }) },
        { key: "role", label: "Role", render: (u) => h("span", { class: ["badge", u.role === "admin" ? "badge-mcp" : "badge-neutral"], text: u.role }) },
        { key: "created_at", label: "Added", numeric: true, render: (u) => h("span", { title: fmt.dateTime(u.created_at), text: fmt.ago(u.created_at) }) },
        { key: "active_tokens", label: "Active tokens", numeric: true },
        { key: "actions", label: "", sortable: false, cls: "cell-actions", render: (u) => button("New token", { icon: "key", cls: "btn btn-sm",
          "data-action": "token-for", "aria-label": `New token for ${u.name}`, onClick: () => this.tokenFor(u) }) },
      ],
    });
    this.el = h("section", { class: "section", "aria-labelledby": "members-h" },
      h("div", { class: "section-head" },
        h("div", {}, h("h2", { id: "members-h", text: "Members" }),
          h("p", { class: "muted small", text: "Members see their own sessions, configs and usage; admins see everyone's." })),
        button("Add member", { icon: "plus", cls: "btn btn-primary btn-sm", "data-action": "add-member", onClick: () => this.add() })),
      this.status, this.table.el);
  }

  set(users) {
    this.table.setRows(users);
  }

  async add() {
    const values = await formDialog({
      title: "Add a member",
      fields: [
        { name: "name", label: "Name", required: true, placeholder: "alice", help: "Letters, digits and _.@- (up to 64)." },
        { name: "admin", label: "Administrator (sees and manages everyone's sessions, users and tokens)", type: "checkbox" },
        { name: "token", label: "Create a sign-in token now", type: "checkbox", value: true },
      ],
      submitLabel: "Add member",
    });
    if (!values) return;
    try {
      const user = await api("/api/users", { method: "POST", body: { name: values.name.trim(), admin: values.admin } });
      toast(`${user.name} added`, { type: "success" });
      if (values.token) await this.tokenFor(user, { quiet: true });
      this.onChange();
    } catch (err) {
      fill(this.status, errorBox(err, { title: "Could not add the member" }));
    }
  }

  async tokenFor(user, { quiet = false } = {}) {
    try {
      const issued = await api(`/api/users/${encodeURIComponent(user.id)}/tokens`, { method: "POST" });
      await showNewToken(issued, { forSomeoneElse: issued.user_id !== me().user?.id });
      if (!quiet) this.onChange();
    } catch (err) {
      fill(this.status, errorBox(err, { title: `Could not create a token for ${user.name}` }));
    }
  }
}

class TeamPage {
  constructor(root) {
    this.ac = new AbortController();
    this.body = h("div", {}, h("div", { class: "loading-log" }, spinner(18), h("span", { text: "Loading…" })));
    root.append(h("section", { class: "page" },
      h("div", { class: "page-head" },
        h("div", {}, h("h1", { text: "Team" }),
          h("p", { class: "lead", text: "Who can use this server, and the tokens they sign in with. A token is shown once, when it is created." }))),
      this.body));
    if (!tokenMode()) {
      fill(this.body, noAccounts());
      return;
    }
    const reload = () => this.load();
    this.mine = new MyTokens({ onChange: reload });
    this.admin = me().admin;
    if (this.admin) {
      this.members = new Members({ onChange: reload });
      this.everyone = new TokenTable({ owners: true, label: "Every token", onChange: reload });
    }
    this.load();
  }

  async load() {
    const signal = this.ac.signal;
    try {
      const [mine, users, all] = await Promise.all([
        api("/api/tokens", { signal }),
        this.admin ? api("/api/users", { signal }) : null,
        this.admin ? api("/api/tokens?all=1", { signal }) : null,
      ]);
      this.mine.set(mine.tokens);
      const parts = [this.mine.el];
      if (this.admin) {
        this.members.set(users.users);
        this.everyone.set(all.tokens);
        parts.push(this.members.el, h("section", { class: "section", "aria-labelledby": "all-tokens-h" },
          h("div", { class: "section-head" }, h("h2", { id: "all-tokens-h", text: "Every token" })), this.everyone.el));
      }
      fill(this.body, parts);
    } catch (err) {
      if (err.name === "AbortError") return;
      fill(this.body, errorBox(err, { title: "Could not load the team" }));
    }
  }

  destroy() {
    this.ac.abort();
  }
}

export function noAccounts(what = "Users and API tokens") {
  return emptyState({ iconName: "users", title: "This server has no accounts",
    text: `${what} exist with AUTH_MODE=token. With AUTH_MODE=none (this server) each session is opened by the Anthropic key that launched it. ` +
      "To use accounts: create an admin with `agcluster users add NAME --admin`, give them a token with `agcluster tokens create NAME`, and restart with AUTH_MODE=token." });
}

export function mount(root) {
  const page = new TeamPage(root);
  return () => page.destroy();
}
