// The live YAML preview of the config being built (JSON until the yaml library loads).

import { button, h, icon } from "../../dom.js";
import { highlightInto } from "../../markdown.js";
import { toast } from "../../ui.js";

let YAML = null;
const yamlReady = import("/ui/node_modules/yaml/browser/index.js").then((m) => { YAML = m.default || m; }).catch(() => {});

export class YamlPreview {
  constructor() {
    this.code = h("code", { class: "hljs language-yaml" });
    const copy = button("Copy YAML", { icon: "copy", cls: "btn btn-xs btn-ghost", onClick: async () => {
      try {
        await navigator.clipboard.writeText(this.code.textContent);
        toast("YAML copied", { timeout: 1500 });
      } catch {
        /* no clipboard */
      }
    } });
    this.el = h("aside", { class: "builder-preview card", "aria-label": "YAML preview" },
      h("div", { class: "preview-head" }, h("h2", {}, icon("file-text", { size: 16 }), h("span", { text: "YAML preview" })), copy),
      h("pre", { class: "yaml-preview", tabindex: "0" }, this.code));
    this.ready = yamlReady;
  }

  show(config) {
    let text;
    try {
      text = YAML ? YAML.stringify(config, { lineWidth: 100 }) : JSON.stringify(config, null, 2);
    } catch {
      text = JSON.stringify(config, null, 2);
    }
    highlightInto(this.code, text, YAML ? "yaml" : "json");
  }
}
