// The builder's building blocks: labelled fields, sections, tool check-grids and key/value
// lists. A block that changes the config other than by typing (a row added or removed, a
// bulk selection) fires a bubbling "change" so the form redraws its preview once.

import { button, fill, h, icon } from "../../dom.js";

export function changed(el) {
  el.dispatchEvent(new Event("change", { bubbles: true }));
}

/** A labelled control with its help and an (initially hidden) error line; `name` is the
 * config path errors are matched to (data-wrap). */
export function field(label, input, { help = "", required = false, name = "", id = "" } = {}) {
  return h("div", { class: "field", "data-wrap": name },
    h("label", { for: id || input.id, class: "label" }, label, required ? h("span", { class: "req", "aria-hidden": "true", text: " *" }) : null),
    input,
    help ? h("p", { class: "field-help", text: help }) : null,
    h("p", { class: "field-error", hidden: true }));
}

/** A field inside a sub-agent or MCP server row (errors matched by data-sub-wrap). */
export function subField(label, input, sub, required = false) {
  return h("div", { class: "field", "data-sub-wrap": sub },
    label ? h("label", { class: "label", for: input.id || null }, label, required ? h("span", { class: "req", "aria-hidden": "true", text: " *" }) : null) : null,
    input, h("p", { class: "field-error", hidden: true }));
}

export function section(title, iconName, ...children) {
  const id = `sec-${title.toLowerCase().replace(/\W+/g, "-")}`;
  return h("fieldset", { class: "card form-section", "aria-labelledby": id },
    h("legend", { class: "sr-only", text: title }),
    h("h2", { id, class: "section-title" }, icon(iconName, { size: 16 }), h("span", { text: title })),
    children);
}

/** Checkboxes for a list of tool names (the server's, from /ui/meta.json). */
export class ToolGrid {
  constructor(name, tools, { selected = [], compact = false, label = name.replace("_", " ") } = {}) {
    this.tools = tools;
    this.el = h("div", { class: ["check-grid", compact && "compact"], "data-field": name, "data-sub": compact ? "tools" : null,
      role: "group", "aria-label": label },
    tools.map((t) => h("label", { class: "check" }, h("input", { type: "checkbox", value: t, checked: selected.includes(t) }), h("span", { text: t }))));
  }

  set(list) {
    for (const c of this.el.querySelectorAll("input[type=checkbox]")) c.checked = list.includes(c.value);
    changed(this.el);
  }

  get() {
    return [...this.el.querySelectorAll("input[type=checkbox]:checked")].map((c) => c.value);
  }
}

/** Editable NAME = value rows (env, MCP env and headers). */
export class KeyValueList {
  constructor(name, { keyLabel, valueLabel, keyPlaceholder }) {
    this.keyLabel = keyLabel;
    this.valueLabel = valueLabel;
    this.keyPlaceholder = keyPlaceholder;
    this.list = h("div", { class: "kv-list", "data-field": name });
    const add = button(`Add ${keyLabel.toLowerCase()}`, { icon: "plus", cls: "btn btn-xs btn-ghost", onClick: () => {
      this.list.append(this.row());
      changed(this.list);
      this.list.lastChild.querySelector("input").focus();
    } });
    this.el = h("div", { class: "kv", "data-wrap": name }, this.list, add, h("p", { class: "field-error", hidden: true }));
  }

  row(k = "", v = "") {
    const row = h("div", { class: "kv-row", "data-row": "" },
      h("input", { class: "input input-sm kv-key", placeholder: this.keyPlaceholder, value: k, "aria-label": this.keyLabel, spellcheck: "false" }),
      h("input", { class: "input input-sm kv-value", placeholder: "value", value: v ?? "", "aria-label": this.valueLabel, spellcheck: "false" }),
      button(`Remove ${this.keyLabel.toLowerCase()}`, { icon: "x", cls: "btn-icon btn-xs", iconOnly: true, onClick: () => {
        row.remove();
        changed(this.list);
      } }),
      h("p", { class: "field-error", hidden: true }));
    return row;
  }

  set(obj) {
    fill(this.list, Object.entries(obj || {}).map(([k, v]) => this.row(k, v)));
  }

  get() {
    const out = {};
    for (const row of this.list.children) {
      const k = row.querySelector(".kv-key").value.trim();
      if (k) out[k] = row.querySelector(".kv-value").value;
    }
    return out;
  }
}
