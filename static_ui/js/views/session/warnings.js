// The limits and network policy this provider does not enforce for the session (the launch
// answer's and session details' `warnings`), said plainly above the conversation.

import { button, fill, h, icon } from "../../dom.js";

export class WarningsNotice {
  constructor() {
    this.list = h("ul", { class: "warnings-list" });
    this.el = h("div", { class: "alert alert-warn session-warnings", role: "note", hidden: true }, icon("alert"),
      h("div", {}, h("strong", { text: "Not enforced on this machine" }), this.list),
      button("Dismiss", { icon: "x", cls: "btn-icon btn-xs", iconOnly: true, onClick: () => { this.dismissed = true; this.el.hidden = true; } }));
    this.dismissed = false;
  }

  show(warnings = []) {
    fill(this.list, warnings.map((w) => h("li", { text: w })));
    this.el.hidden = this.dismissed || !warnings.length;
  }
}
