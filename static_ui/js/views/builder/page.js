// The configuration builder page: start from a preset, a saved config or a blank one (the
// server's defaults), see the YAML as it is built, validate through the API with errors
// next to their fields, save as a custom config, delete it, or launch it straight away.

import { api, tokenMode } from "../../api.js";
import { button, clear, fill, h, icon, spinner } from "../../dom.js";
import { launched } from "../../launching.js";
import { askForCredentials } from "../../mcp.js";
import { getKey } from "../../store.js";
import { askForKey, confirmDialog, errorBox, toast } from "../../ui.js";
import { FieldErrors, localErrors } from "./errors.js";
import { ConfigForm } from "./form.js";
import { YamlPreview } from "./preview.js";

/** The server's lists for the form, or null when /ui/meta.json could not be read. */
function schemaFrom(meta) {
  const lists = [meta.known_tools, meta.permission_modes, meta.setting_sources, meta.network_policies, meta.mcp_transports];
  if (!lists.every((x) => Array.isArray(x) && x.length) || !meta.config_defaults) return null;
  return { tools: meta.known_tools, permissionModes: meta.permission_modes, settingSources: meta.setting_sources,
    networks: meta.network_policies, transports: meta.mcp_transports, defaults: meta.config_defaults };
}

const slugify = (name) => name.toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
  .replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 64);

class BuilderPage {
  constructor(root, configId, { meta, navigate }) {
    this.ac = new AbortController();
    this.navigate = navigate;
    this.presetIds = new Set(meta.preset_ids || []);
    this.knownIds = new Set(); // custom configs already saved (replacing one asks first)
    this.editing = null; // id of the custom config being edited
    this.idTouched = false;
    const schema = schemaFrom(meta);
    if (!schema) {
      root.append(h("section", { class: "page" }, errorBox(new Error("The server's configuration schema (/ui/meta.json) could not be read; reload the page."),
        { title: "The builder is unavailable" })));
      return;
    }
    this.form = new ConfigForm(schema);
    this.preview = new YamlPreview();
    this.summary = h("div", { class: "builder-summary", "aria-live": "polite" });
    this.errors = new FieldErrors(this.form, this.summary);
    this.startFrom = h("select", { class: "input", id: "start-from", "aria-label": "Start from" }, h("option", { value: "", text: "Blank configuration" }));
    this.validateBtn = button("Validate", { icon: "check", cls: "btn", onClick: () => this.busy("Validating…", () => this.check()) });
    this.saveBtn = button("Save configuration", { icon: "download", cls: "btn", onClick: () => this.busy("Saving…", () => this.save()) });
    this.launchBtn = button("Launch now", { icon: "rocket", cls: "btn btn-primary", onClick: () => this.busy("Launching…", () => this.launch()) });
    this.deleteBtn = button("Delete", { icon: "trash", cls: "btn btn-danger-soft", hidden: true, onClick: () => this.remove() });
    this.actionStatus = h("span", { class: "action-status", "aria-live": "polite" });

    root.append(h("section", { class: "page page-wide" },
      h("div", { class: "page-head" },
        h("div", {}, h("h1", { text: "Config builder" }),
          h("p", { class: "lead", text: "Describe an agent: its tools, prompt, sub-agents, MCP servers, resources and network. Save it for later or launch it straight away." })),
        h("div", { class: "field inline-field" }, h("label", { for: "start-from", text: "Start from" }), this.startFrom)),
      h("div", { class: "builder" },
        h("div", { class: "builder-main" }, this.summary, this.form.el,
          h("div", { class: "builder-actions" }, this.deleteBtn, this.actionStatus, this.validateBtn, this.saveBtn, this.launchBtn)),
        this.preview.el)));

    this.form.el.addEventListener("input", (e) => this.typed(e));
    this.form.el.addEventListener("change", () => this.update());
    this.startFrom.addEventListener("change", () => {
      history.replaceState(null, "", this.startFrom.value ? `#/builder/${this.startFrom.value}` : "#/builder");
      this.open(this.startFrom.value);
    });
    // The blank form is usable at once; a config named in the URL replaces it when loaded.
    this.open(configId || "");
    this.preview.ready.then(() => this.update());
    this.loadList(configId || "");
  }

  typed(e) {
    const { inputs } = this.form;
    if (e.target === inputs.id) this.idTouched = true;
    if (e.target === inputs.name && !this.idTouched && !this.editing) inputs.id.value = slugify(inputs.name.value);
    const wrap = e.target.closest("[data-wrap], [data-sub-wrap]");
    if (wrap) this.errors.set(wrap, "");
    this.update();
  }

  update() {
    this.preview.show(this.form.collect());
    this.form.syncRows();
  }

  async busy(label, fn) {
    const buttons = [this.validateBtn, this.saveBtn, this.launchBtn];
    buttons.forEach((b) => { b.disabled = true; });
    fill(this.actionStatus, spinner(14), h("span", { text: label }));
    try {
      return await fn();
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
      clear(this.actionStatus);
    }
  }

  /** The normalised config when it is valid, else null with the errors shown. */
  async validate() {
    const config = this.form.collect();
    const local = localErrors(config, this.form);
    if (local) {
      this.errors.show(local);
      return null;
    }
    try {
      const r = await api("/api/configs/validate", { method: "POST", body: config, signal: this.ac.signal });
      this.errors.clear();
      return r.config || config;
    } catch (err) {
      if (err.name === "AbortError") return null;
      if (err.status === 400 && err.details && Object.keys(err.details).length) this.errors.show(err.details);
      else this.fail(err, "Could not validate");
      return null;
    }
  }

  fail(err, title) {
    fill(this.summary, errorBox(err, { title }));
    this.summary.scrollIntoView({ block: "center" });
  }

  async check() {
    if (await this.validate()) {
      fill(this.summary, h("div", { class: "alert alert-ok", role: "status" }, icon("check-circle"), h("p", { text: "The configuration is valid." })));
    }
  }

  async save() {
    const config = await this.validate();
    if (!config) return;
    if (this.presetIds.has(config.id)) {
      this.errors.show({ id: ["This id belongs to a preset; choose another id for your copy."] });
      return;
    }
    if (config.id !== this.editing && this.knownIds.has(config.id)) {
      const ok = await confirmDialog({ title: "Replace configuration?", message: `A custom configuration with the id "${config.id}" exists. Replace it?`,
        confirmLabel: "Replace", danger: true });
      if (!ok) return;
    }
    if (!tokenMode() && !getKey()) {
      const key = await askForKey("Saving ties the configuration to your API key: only that key can replace or delete it later.");
      if (!key) return;
    }
    try {
      const saved = await api("/api/configs/", { method: "POST", body: this.form.collect(), signal: this.ac.signal });
      this.editing = saved.id;
      this.knownIds.add(saved.id);
      this.deleteBtn.hidden = false;
      history.replaceState(null, "", `#/builder/${saved.id}`);
      toast(`Saved “${saved.name}”. It is on the launch page now.`, { type: "success" });
      this.loadList(saved.id);
    } catch (err) {
      if (err.status === 400) this.errors.show(err.details && Object.keys(err.details).length ? err.details : { _schema: [err.message] });
      else fill(this.summary, errorBox(err, { title: err.status === 403 || err.status === 409 ? "This configuration belongs to someone else" : "Could not save" }));
    }
  }

  async launch() {
    const config = await this.validate();
    if (!config) return;
    const key = getKey() || await askForKey("Launching needs your Anthropic API key.");
    if (!key) return;
    const mcpEnv = await askForCredentials(config);
    if (mcpEnv === null) return;
    fill(this.actionStatus, spinner(14), h("span", { text: "Starting a machine…" }));
    try {
      const body = { api_key: key, config: this.form.collect() };
      if (Object.keys(mcpEnv).length) body.mcp_env = mcpEnv;
      const result = await api("/api/agents/launch", { method: "POST", body, key: "", signal: this.ac.signal });
      launched(result, { name: config.name, navigate: this.navigate });
    } catch (err) {
      if (err.name === "AbortError") return;
      if (err.status === 400 && err.details && Object.keys(err.details).length) this.errors.show(err.details.config || err.details);
      else this.fail(err, "Launch failed");
    }
  }

  async remove() {
    if (!this.editing) return;
    const ok = await confirmDialog({ title: "Delete configuration?", message: `Delete the custom configuration "${this.editing}"? Running sessions keep working.`,
      confirmLabel: "Delete", danger: true });
    if (!ok) return;
    try {
      await api(`/api/configs/${encodeURIComponent(this.editing)}`, { method: "DELETE" });
      toast(`Deleted ${this.editing}`, { type: "success" });
      this.navigate("#/builder");
    } catch (err) {
      toast(err.message, { type: "error" });
    }
  }

  async loadList(selected = "") {
    try {
      const data = await api("/api/configs/", { signal: this.ac.signal });
      const preset = (c) => this.presetIds.has(c.id);
      fill(this.startFrom, h("option", { value: "", text: "Blank configuration" }),
        h("optgroup", { label: "Presets" }, data.configs.filter(preset).map((c) => h("option", { value: c.id, text: c.name }))),
        h("optgroup", { label: "Your configurations" }, data.configs.filter((c) => !preset(c)).map((c) => h("option", { value: c.id, text: c.name }))));
      for (const c of data.configs) if (!preset(c)) this.knownIds.add(c.id);
      if (!this.startFrom.value || selected) this.startFrom.value = selected;
    } catch (err) {
      if (err.name !== "AbortError") toast(err.message, { type: "error" });
    }
  }

  /** Load a preset (as a copy to customise), a saved config (to edit), or "" for blank. */
  async open(id) {
    this.errors.clear();
    if (!id) {
      this.startFrom.value = "";
      this.editing = null;
      this.idTouched = false;
      this.deleteBtn.hidden = true;
      this.form.load({});
      return;
    }
    const { el } = this.form;
    el.inert = true;
    el.setAttribute("aria-busy", "true");
    try {
      const c = await api(`/api/configs/${encodeURIComponent(id)}`, { signal: this.ac.signal });
      this.startFrom.value = id;
      this.idTouched = true;
      if (this.presetIds.has(id)) {
        this.editing = null;
        this.form.load({ ...c, id: `${c.id}-custom`, name: `${c.name} (custom)` });
      } else {
        this.editing = c.id;
        this.form.load(c);
      }
      this.deleteBtn.hidden = !this.editing;
      this.errors.clear();
    } catch (err) {
      if (err.name !== "AbortError") fill(this.summary, errorBox(err, { title: `Could not load ${id}` }));
    } finally {
      el.inert = false;
      el.removeAttribute("aria-busy");
    }
  }

  destroy() {
    this.ac.abort();
  }
}

export function mount(root, [configId], context) {
  const page = new BuilderPage(root, configId, context);
  return () => page.destroy();
}
