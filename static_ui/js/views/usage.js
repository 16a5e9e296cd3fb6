// The usage page: cost and tokens per day as a chart, per user and per session as sortable
// tables, and each quota with how much of it is used. Members see their own; admins see
// everyone's (and any member's quotas). Numbers are the model relay's metering.

import { api, tokenMode } from "../api.js";
import { me } from "../account.js";
import { cssColor, loadChart } from "../charts.js";
import { fill, h, icon, spinner } from "../dom.js";
import * as fmt from "../format.js";
import { SortableTable } from "../table.js";
import { emptyState, errorBox } from "../ui.js";

const RANGES = [[7, "7 days"], [30, "30 days"], [90, "90 days"]];
const allTokens = (r) => (r.input_tokens || 0) + (r.output_tokens || 0) + (r.cache_read_tokens || 0) + (r.cache_write_tokens || 0);

/** Every UTC day of the range, oldest first, with zeros where nothing was used. */
export function dailySeries(rows, days, now = new Date()) {
  const byDay = new Map(rows.map((r) => [r.key, r]));
  const out = [];
  for (let i = days - 1; i >= 0; i -= 1) {
    const day = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - i)).toISOString().slice(0, 10);
    const row = byDay.get(day);
    out.push({ day, tokens: row ? allTokens(row) : 0, cost: row ? row.cost_usd : 0 });
  }
  return out;
}

/** Tokens per day as bars, cost per day as a line on its own axis. */
class UsageChart {
  constructor() {
    this.canvas = h("canvas", { id: "usage-chart", role: "img", "aria-label": "Tokens and cost per day" });
    this.numbers = h("tbody");
    this.status = h("div", { class: "chart-status" });
    this.el = h("section", { class: "card chart-card", "aria-labelledby": "chart-h" },
      h("div", { class: "section-head" }, h("h2", { id: "chart-h" }, icon("chart"), h("span", { text: " Tokens and cost per day" }))),
      this.status,
      h("div", { class: "chart-box" }, this.canvas),
      h("details", { class: "subsection" }, h("summary", { text: "The numbers" }),
        h("div", { class: "table-wrap" }, h("table", { class: "data-table compact", "aria-label": "Usage per day" },
          h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "Day (UTC)" }), h("th", { scope: "col", class: "num", text: "Tokens" }),
            h("th", { scope: "col", class: "num", text: "Cost" }))), this.numbers))));
    this.chart = null;
  }

  async show(series) {
    fill(this.numbers, series.filter((d) => d.tokens || d.cost).map((d) => h("tr", { "data-day": d.day },
      h("td", { text: d.day }), h("td", { class: "num", text: d.tokens.toLocaleString() }), h("td", { class: "num", text: fmt.cost(d.cost) }))));
    let Chart;
    try {
      Chart = await loadChart();
    } catch (err) {
      fill(this.status, errorBox(err));
      return;
    }
    const labels = series.map((d) => d.day.slice(5));
    const tokens = series.map((d) => d.tokens);
    const cost = series.map((d) => Number(d.cost.toFixed(6)));
    if (this.chart) {
      this.chart.data.labels = labels;
      this.chart.data.datasets[0].data = tokens;
      this.chart.data.datasets[1].data = cost;
      this.chart.update();
      return;
    }
    const muted = cssColor("--muted", "#5c6675");
    const grid = cssColor("--border", "#dfe3e9");
    this.chart = new Chart(this.canvas, {
      data: {
        labels,
        datasets: [
          { type: "bar", label: "Tokens", data: tokens, yAxisID: "tokens", backgroundColor: cssColor("--info", "#1f5fc4"), borderRadius: 3 },
          { type: "line", label: "Cost (USD)", data: cost, yAxisID: "cost", borderColor: cssColor("--accent", "#b4532a"),
            backgroundColor: cssColor("--accent", "#b4532a"), tension: 0.25, pointRadius: 2 },
        ],
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { labels: { color: muted } },
          tooltip: { callbacks: { label: (c) => (c.dataset.yAxisID === "cost" ? `Cost: ${fmt.cost(c.parsed.y)}` : `Tokens: ${c.parsed.y.toLocaleString()}`) } } },
        scales: {
          x: { ticks: { color: muted, maxRotation: 0, autoSkipPadding: 12 }, grid: { display: false } },
          tokens: { position: "left", beginAtZero: true, ticks: { color: muted, callback: (v) => fmt.tokens(v) }, grid: { color: grid } },
          cost: { position: "right", beginAtZero: true, ticks: { color: muted, callback: (v) => fmt.cost(v) }, grid: { drawOnChartArea: false } },
        },
      },
    });
  }

  destroy() {
    if (this.chart) this.chart.destroy();
  }
}

/** Each limit with a meter of how much is used; admins can look at any member's. */
class QuotasPanel {
  constructor({ signal }) {
    this.signal = signal;
    this.list = h("ul", { class: "quota-list", "aria-live": "polite" });
    this.who = h("select", { class: "input input-sm", id: "quota-user", "aria-label": "Whose quotas", hidden: true });
    this.who.addEventListener("change", () => this.load(this.who.value));
    this.el = h("section", { class: "card quotas-card", "aria-labelledby": "quotas-h" },
      h("div", { class: "section-head" }, h("h2", { id: "quotas-h", text: "Quotas" }), this.who),
      this.list,
      h("p", { class: "muted small", text: "Set by the server's QUOTA_* and RATE_LIMIT_PER_MINUTE settings; 0 there means no limit." }));
  }

  setUsers(users, selected) {
    fill(this.who, users.map((u) => h("option", { value: u.id, text: u.name, selected: u.id === selected })));
    this.who.hidden = users.length < 2;
  }

  async load(userId = "") {
    try {
      const report = await api(`/api/quotas${userId ? `?user=${encodeURIComponent(userId)}` : ""}`, { signal: this.signal });
      fill(this.list, report.quotas.map((q) => quotaRow(q)));
    } catch (err) {
      if (err.name !== "AbortError") fill(this.list, h("li", {}, errorBox(err, { title: "Could not read the quotas" })));
    }
  }
}

const QUOTA_LABELS = {
  max_sessions: "Sessions", launches_per_hour: "Launches per hour", daily_tokens: "Tokens today",
  daily_usd: "Spend today", rate_limit_per_minute: "Requests per minute",
};

function quotaRow(q) {
  const show = (v) => (q.unit === "usd" ? fmt.cost(v) : q.unit === "tokens" ? fmt.tokens(v) : String(Math.round(v)));
  const limited = q.limit !== null && q.limit !== undefined;
  const share = limited ? Math.min(1, q.used / q.limit) : 0;
  return h("li", { class: "quota", "data-quota": q.name, "data-state": !limited ? "unlimited" : share >= 1 ? "exhausted" : share >= 0.8 ? "high" : "ok" },
    h("div", { class: "quota-head" },
      h("span", { class: "quota-name", text: QUOTA_LABELS[q.name] || q.name, title: q.setting }),
      h("span", { class: "quota-value", text: limited ? `${show(q.used)} of ${show(q.limit)}` : `${show(q.used)} · no limit` })),
    limited ? h("progress", { class: "quota-meter", max: "1", value: String(share), "aria-label": `${QUOTA_LABELS[q.name] || q.name} used` }) : null,
    h("span", { class: "muted small", text: q.window }));
}

class UsagePage {
  constructor(root) {
    this.ac = new AbortController();
    this.days = 30;
    this.range = h("div", { class: "seg", role: "radiogroup", "aria-label": "Period" },
      RANGES.map(([days, label]) => h("button", { type: "button", role: "radio", class: "seg-btn", "data-days": String(days),
        "aria-checked": String(days === this.days), text: label, onclick: () => this.setRange(days) })));
    this.scope = h("span", { class: "badge badge-neutral" });
    this.totals = h("div", { class: "usage-totals", "aria-live": "polite" });
    this.body = h("div", { class: "usage-body" }, h("div", { class: "loading-log" }, spinner(18), h("span", { text: "Loading usage…" })));
    root.append(h("section", { class: "page page-wide" },
      h("div", { class: "page-head" },
        h("div", {}, h("h1", {}, "Usage ", this.scope),
          h("p", { class: "lead", text: "Tokens and cost metered at the model relay, per day, user and session, and how much of each quota is used." })),
        this.range),
      this.body));
    if (!tokenMode() && !me().admin) {
      this.scope.hidden = true;
      fill(this.body, emptyState({ iconName: "chart", title: "Usage per user needs accounts",
        text: "With AUTH_MODE=none this server has no users; each session's tokens and cost are on the Sessions page. " +
          "Run with AUTH_MODE=token for per-user usage, or let the operator see everything from this machine with AGCLUSTER_LOCAL_ADMIN=1." }));
      return;
    }
    this.everyone = me().admin;
    this.chart = new UsageChart();
    this.quotas = new QuotasPanel({ signal: this.ac.signal });
    this.users = this.everyone ? this.table("users", [
      { key: "user", label: "User", render: (r) => h("strong", { text: r.user }) },
      ...usageColumns(),
    ], "cost_usd", (r) => r.key || "anonymous") : null;
    this.sessions = this.table("sessions", [
      { key: "key", label: "Session", render: (r) => h("div", { class: "cell-agent" },
        r.status ? h("a", { href: `#/session/${r.key}`, class: "mono", text: fmt.shortId(r.key) }) : h("span", { class: "mono", text: fmt.shortId(r.key) }),
        h("span", { class: "muted small", text: r.config_id || "deleted" })) },
      this.everyone ? { key: "user", label: "User" } : null,
      ...usageColumns(),
    ].filter(Boolean), "cost_usd", (r) => r.key);
    fill(this.body,
      h("div", { class: "usage-grid" }, h("div", { class: "usage-main" }, this.totals, this.chart.el), this.quotas.el),
      this.users ? section("Per user", "users-h", this.users.el) : null,
      section("Per session", "sessions-h", this.sessions.el));
    this.scope.textContent = this.everyone ? "everyone" : "yours";
    this.load();
  }

  table(name, columns, sortKey, rowKey) {
    return new SortableTable({ columns, sortKey, rowKey, label: `Usage per ${name === "users" ? "user" : "session"}`, cls: `usage-${name}` });
  }

  setRange(days) {
    this.days = days;
    for (const b of this.range.children) b.setAttribute("aria-checked", String(Number(b.dataset.days) === days));
    this.load();
  }

  async load() {
    const signal = this.ac.signal;
    const q = (group) => api(`/api/usage?group_by=${group}&days=${this.days}`, { signal });
    try {
      const [days, sessions, users, people] = await Promise.all([q("day"), q("session"), this.users ? q("user") : null,
        this.everyone && tokenMode() ? api("/api/users", { signal }) : null]);
      const series = dailySeries(days.usage, this.days);
      const sum = (key) => days.usage.reduce((n, r) => n + (key === "tokens" ? allTokens(r) : r[key] || 0), 0);
      fill(this.totals,
        stat("coins", "Cost", fmt.cost(sum("cost_usd")), "total-cost"),
        stat("hash", "Tokens", fmt.tokens(sum("tokens")), "total-tokens"),
        stat("message", "Model requests", String(sum("requests")), "total-requests"));
      this.sessions.setRows(sessions.usage);
      if (this.users) this.users.setRows(users.usage);
      if (people) this.quotas.setUsers(people.users, me().user?.id);
      await Promise.all([this.chart.show(series), this.quotas.load(this.quotas.who.value)]);
    } catch (err) {
      if (err.name !== "AbortError") fill(this.totals, errorBox(err, { title: "Could not load usage" }));
    }
  }

  destroy() {
    this.ac.abort();
    if (this.chart) this.chart.destroy();
  }
}

function usageColumns() {
  return [
    { key: "requests", label: "Requests", numeric: true },
    { key: "input_tokens", label: "Input", numeric: true, value: (r) => (r.input_tokens || 0) + (r.cache_read_tokens || 0) + (r.cache_write_tokens || 0),
      render: (r) => fmt.tokens((r.input_tokens || 0) + (r.cache_read_tokens || 0) + (r.cache_write_tokens || 0)) },
    { key: "output_tokens", label: "Output", numeric: true, render: (r) => fmt.tokens(r.output_tokens) },
    { key: "cost_usd", label: "Cost", numeric: true, render: (r) => fmt.cost(r.cost_usd) },
  ];
}

function stat(iconName, label, value, id) {
  return h("div", { class: "usage-stat card", "data-stat": id }, icon(iconName, { size: 16 }),
    h("div", {}, h("div", { class: "muted small", text: label }), h("strong", { class: "usage-stat-value", text: value })));
}

function section(title, id, content) {
  return h("section", { class: "section", "aria-labelledby": id }, h("div", { class: "section-head" }, h("h2", { id, text: title })), content);
}

export function mount(root) {
  const page = new UsagePage(root);
  return () => page.destroy();
}
