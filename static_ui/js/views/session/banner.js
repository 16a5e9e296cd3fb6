// One line above the conversation: reconnecting, the machine is stopped, it failed.

import { fill, h, icon, spinner } from "../../dom.js";

export class Banner {
  constructor() {
    this.el = h("div", { class: "banner", role: "status", hidden: true });
  }

  get kind() {
    return this.el.hidden ? "" : this.el.dataset.kind;
  }

  show(kind, text, action) {
    fill(this.el, kind === "reconnecting" ? spinner(14) : icon(kind === "error" ? "alert" : "info", { size: 14 }),
      h("span", { text }), action || null);
    this.el.dataset.kind = kind;
    this.el.hidden = false;
  }

  hide() {
    this.el.hidden = true;
  }
}
