// Validation errors next to their fields: the server's (a 400's details, keyed by config
// path) and a few local checks that spare a request for an obviously incomplete form.

import { clear, h, icon } from "../../dom.js";

const SLUG = /^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$/;

export class FieldErrors {
  /** `form` is the ConfigForm (it knows where each path is shown); `summary` heads the page. */
  constructor(form, summary) {
    this.form = form;
    this.summary = summary;
  }

  clear() {
    for (const p of this.form.el.querySelectorAll(".field-error")) {
      p.hidden = true;
      p.textContent = "";
    }
    for (const i of this.form.el.querySelectorAll("[aria-invalid]")) i.removeAttribute("aria-invalid");
    clear(this.summary);
  }

  /** One wrapper's message ("" hides it), with aria-invalid/-describedby on its control. */
  set(wrap, message) {
    const p = wrap.querySelector(":scope > .field-error");
    if (!p) return;
    p.hidden = !message;
    p.textContent = message;
    const control = wrap.querySelector(":scope > input, :scope > textarea, :scope > select");
    if (!control) return;
    if (message) {
      control.setAttribute("aria-invalid", "true");
      if (!p.id) p.id = `err-${Math.random().toString(36).slice(2, 8)}`;
      control.setAttribute("aria-describedby", p.id);
    } else control.removeAttribute("aria-invalid");
  }

  /** Show a details object ({field: [messages]} nested like the config); focus the first. */
  show(details) {
    this.clear();
    const flat = [];
    const walk = (node, path) => {
      if (Array.isArray(node)) {
        if (node.every((x) => typeof x === "string")) flat.push([path, node.join(" ")]);
        else node.forEach((x, i) => walk(x, [...path, String(i)]));
      } else if (node && typeof node === "object") {
        for (const [k, v] of Object.entries(node)) walk(v, [...path, k]);
      } else if (node !== undefined) flat.push([path, String(node)]);
    };
    walk(details, []);
    const unplaced = [];
    let first = null;
    for (const [path, message] of flat) {
      const wrap = path.length ? this.form.wrapFor(path) : null;
      if (!wrap) {
        unplaced.push(`${path.filter((x) => x !== "value").join(".") || "config"}: ${message}`);
        continue;
      }
      const p = wrap.querySelector(":scope > .field-error");
      const listed = ["env", "allowed_tools", "disallowed_tools"].includes(path[0]) && path.length > 1;
      const prefix = path[0] === "env" || listed ? `${path.slice(1).filter((x) => x !== "value" && x !== "key").join(".")}: ` : "";
      const existing = p && !p.hidden ? `${p.textContent} ` : "";
      this.set(wrap, `${existing}${prefix}${message}`.trim());
      first ||= wrap;
    }
    if (flat.length) {
      this.summary.append(h("div", { class: "alert alert-error", role: "alert" }, icon("alert"),
        h("div", {}, h("strong", { text: `${flat.length === 1 ? "1 problem" : `${flat.length} problems`} to fix` }),
          unplaced.length ? h("ul", {}, unplaced.map((u) => h("li", { text: u }))) : h("p", { text: "See the highlighted fields." }))));
    }
    (first || this.summary).scrollIntoView({ block: "center" });
    const control = first && first.querySelector("input, textarea, select");
    if (control) control.focus({ preventScroll: true });
  }
}

/** What can be told without the server; null when nothing. */
export function localErrors(config, form) {
  const d = {};
  if (!config.name) d.name = ["Give the agent a name."];
  if (!config.id) d.id = ["An id is required."];
  else if (!SLUG.test(config.id)) d.id = ["Use 3–64 lowercase letters, digits and dashes (not at the ends)."];
  const unnamed = form.unnamed();
  if (unnamed.agents) d.agents = { "": ["Every sub-agent needs a name."] };
  if (unnamed.servers) d.mcp_servers = { "": ["Every MCP server needs a name."] };
  return Object.keys(d).length ? d : null;
}
