// A table whose columns sort on a click (or Enter/Space) on their header, with aria-sort
// saying which way. Rows are plain objects; each column says how to read, show and compare.

import { fill, h, icon } from "./dom.js";

/**
 * columns: [{ key, label, value?(row) → sortable value, render?(row) → node/text,
 *             numeric?: bool, sortable?: bool (default true), cls? }]
 */
export class SortableTable {
  constructor({ columns, rows = [], sortKey = null, descending = true, label = "", rowKey = null, cls = "" }) {
    this.columns = columns;
    this.rows = rows;
    this.sortKey = sortKey;
    this.descending = descending;
    this.rowKey = rowKey;
    this.head = h("tr");
    this.body = h("tbody");
    this.table = h("table", { class: ["data-table", cls], "aria-label": label || null }, h("thead", {}, this.head), this.body);
    this.el = h("div", { class: "table-wrap card" }, this.table);
    this.render();
  }

  setRows(rows) {
    this.rows = rows;
    this.render();
  }

  sortBy(key) {
    if (this.sortKey === key) this.descending = !this.descending;
    else {
      this.sortKey = key;
      const column = this.columns.find((c) => c.key === key);
      this.descending = Boolean(column && column.numeric);
    }
    this.render();
  }

  sorted() {
    const column = this.columns.find((c) => c.key === this.sortKey);
    if (!column) return [...this.rows];
    const read = column.value || ((row) => row[column.key]);
    const direction = this.descending ? -1 : 1;
    return [...this.rows].sort((a, b) => direction * compare(read(a), read(b)));
  }

  render() {
    fill(this.head, this.columns.map((c) => {
      const sortable = c.sortable !== false;
      const active = sortable && this.sortKey === c.key;
      const th = h("th", { scope: "col", class: [c.numeric && "num", c.cls], "data-key": c.key,
        "aria-sort": active ? (this.descending ? "descending" : "ascending") : (sortable ? "none" : null) });
      if (!sortable) th.textContent = c.label;
      else {
        th.append(h("button", { type: "button", class: "sort-btn", onclick: () => this.sortBy(c.key) },
          h("span", { text: c.label }), icon(active ? (this.descending ? "sort-down" : "sort-up") : "sort", { size: 12 })));
      }
      return th;
    }));
    fill(this.body, this.sorted().map((row) => h("tr", { "data-key": this.rowKey ? this.rowKey(row) : null },
      this.columns.map((c) => {
        const content = c.render ? c.render(row) : row[c.key];
        return h("td", { class: [c.numeric && "num", c.cls], "data-label": c.label }, content ?? "");
      }))));
  }
}

function compare(a, b) {
  if (a === b) return 0;
  if (a === null || a === undefined) return -1;
  if (b === null || b === undefined) return 1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}
