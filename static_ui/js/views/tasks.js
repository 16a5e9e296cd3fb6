// The agent's task list, fed by `todo` events: pending / in progress / completed.

import { append, clear, fill, h, icon } from "../dom.js";

const STATUS = {
  in_progress: { label: "In progress", icon: "loader", order: 0 },
  pending: { label: "Pending", icon: "circle", order: 1 },
  completed: { label: "Completed", icon: "check-circle", order: 2 },
};

export class TasksPanel {
  constructor() {
    this.todos = [];
    this.counts = h("span", { class: "panel-counts", "aria-live": "polite" });
    this.progress = h("progress", { class: "task-progress", max: "1", value: "0", "aria-label": "Tasks completed" });
    this.list = h("ol", { class: "task-list", "aria-label": "Tasks" });
    this.empty = h("p", { class: "panel-empty", text: "No tasks yet. When the agent plans its work, the task list shows up here." });
    this.details = h("details", { class: "panel-collapse", open: true },
      h("summary", { class: "panel-head" },
        icon("chevron", { size: 14, cls: "chev" }),
        h("h2", { class: "panel-title", id: "tasks-h" }, icon("list-checks", { size: 16 }), h("span", { text: "Tasks" })),
        this.counts),
      h("div", { class: "panel-body" }, this.progress, this.empty, this.list));
    this.el = h("section", { class: "panel tasks-panel", "aria-labelledby": "tasks-h" }, this.details);
    this.render();
  }

  update(todos) {
    this.todos = Array.isArray(todos) ? todos : [];
    this.render();
    if (this.onChange) this.onChange(this.todos);
  }

  render() {
    const n = { pending: 0, in_progress: 0, completed: 0 };
    for (const t of this.todos) n[t.status in n ? t.status : "pending"] += 1;
    const total = this.todos.length;
    clear(this.counts);
    if (total) {
      append(this.counts, [
        n.in_progress ? h("span", { class: "count count-progress", title: "In progress", text: `${n.in_progress} active` }) : null,
        n.pending ? h("span", { class: "count count-pending", title: "Pending", text: `${n.pending} pending` }) : null,
        h("span", { class: "count count-done", title: "Completed", text: `${n.completed}/${total} done` })]);
    }
    this.progress.max = Math.max(total, 1);
    this.progress.value = n.completed;
    this.progress.hidden = total === 0;
    this.empty.hidden = total > 0;
    fill(this.list, this.todos.map((t, i) => {
      const status = STATUS[t.status] ? t.status : "pending";
      const s = STATUS[status];
      const text = status === "in_progress" && t.activeForm ? t.activeForm : t.content;
      return h("li", { class: `task task-${status}`, "data-status": status, "data-index": i },
        h("span", { class: "task-icon", title: s.label }, icon(s.icon, { size: 14, cls: status === "in_progress" ? "spin-slow" : "" })),
        h("span", { class: "task-text", text }),
        h("span", { class: "sr-only", text: ` (${s.label})` }));
    }));
  }
}
