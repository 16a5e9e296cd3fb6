// The workspace explorer: a tree refreshed when tool events touch files, previews with
// highlighting and images, downloads (one file or the whole workspace as a ZIP), and
// drag-and-drop uploads with per-file progress, a target folder and overwrite prompts.

import { api, ApiError, filesPath, saveResponse, uploadFile } from "../api.js";
import { append, button, clear, fill, h, icon, spinner } from "../dom.js";
import * as fmt from "../format.js";
import { highlightInto, languageFor, renderMarkdown } from "../markdown.js";
import { confirmDialog, errorBox, modal, toast } from "../ui.js";

const IMAGE_EXT = /\.(png|jpe?g|gif|webp|bmp|ico|avif|svg)$/i;

export class FilesPanel {
  constructor(sessionId, { maxUploadMb = 50 } = {}) {
    this.sessionId = sessionId;
    this.maxBytes = maxUploadMb * 1024 * 1024;
    this.maxUploadMb = maxUploadMb;
    this.expanded = new Set();
    this.entries = new Map(); // path → entry
    this.previousModified = null; // path → modified, to flash what changed
    this.flash = new Set();
    this.target = "";
    this.loading = false;
    this.again = false;
    this.timer = null;
    this.ac = new AbortController();
    this.uploadQueue = Promise.resolve();
    this.build();
  }

  build() {
    this.tree = h("ul", { class: "tree", role: "tree", "aria-label": "Workspace files" });
    this.treeStatus = h("div", { class: "tree-status" });
    this.fileInput = h("input", { type: "file", multiple: true, class: "sr-only", tabindex: "-1", "aria-hidden": "true" });
    this.fileInput.addEventListener("change", () => {
      this.upload([...this.fileInput.files]);
      this.fileInput.value = "";
    });
    this.targetSelect = h("select", { class: "input input-sm", id: `target-${this.sessionId}`, "aria-label": "Upload target folder" });
    this.targetSelect.addEventListener("change", () => { this.target = this.targetSelect.value; this.syncTarget(); });
    this.uploads = h("ul", { class: "uploads", "aria-label": "Uploads", "aria-live": "polite" });
    this.overlay = h("div", { class: "drop-overlay", "aria-hidden": "true" }, icon("upload", { size: 28 }),
      this.overlayText = h("span", { text: "Drop files to upload" }));
    this.zone = h("div", { class: "dropzone", "data-dropzone": "" }, this.treeStatus, this.tree, this.overlay);
    this.refreshBtn = button("Refresh files", { icon: "refresh", cls: "btn-icon", iconOnly: true, onClick: () => this.refresh() });
    const head = h("div", { class: "panel-head static" },
      h("h2", { class: "panel-title", id: "files-h" }, icon("folder", { size: 16 }), h("span", { text: "Workspace" })),
      h("div", { class: "panel-actions" },
        button("Upload files", { icon: "upload", cls: "btn-icon", iconOnly: true, onClick: () => this.fileInput.click() }),
        button("Download workspace as ZIP", { icon: "archive", cls: "btn-icon", iconOnly: true, onClick: () => this.downloadZip() }),
        this.refreshBtn));
    const targetRow = h("div", { class: "target-row" },
      h("label", { for: this.targetSelect.id, text: "Upload to" }), this.targetSelect,
      h("span", { class: "muted target-hint", text: `max ${this.maxUploadMb} MB a file` }));
    this.el = h("section", { class: "panel files-panel", "aria-labelledby": "files-h" }, head,
      h("div", { class: "panel-body" }, targetRow, this.zone, this.uploads, this.fileInput));
    this.bindDrop();
    this.bindKeys();
    this.syncTargets([]);
  }

  destroy() {
    this.ac.abort();
    clearTimeout(this.timer);
  }

  // ---------------------------------------------------------------- tree
  /** Refresh soon (coalesces bursts of tool events into one listing). */
  touched(paths = []) {
    for (const p of paths) this.expandAncestors(p);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), 250);
  }

  expandAncestors(path) {
    const parts = String(path || "").split("/").filter(Boolean);
    for (let i = 1; i < parts.length; i += 1) this.expanded.add(parts.slice(0, i).join("/"));
  }

  async refresh() {
    if (this.loading) {
      this.again = true;
      return;
    }
    this.loading = true;
    this.refreshBtn.classList.add("is-busy");
    this.zone.setAttribute("aria-busy", "true");
    try {
      const data = await api(filesPath(this.sessionId), { signal: this.ac.signal });
      this.render(data);
    } catch (err) {
      if (err.name === "AbortError") return;
      fill(this.treeStatus, errorBox(err, { title: "Could not list the workspace" }));
    } finally {
      this.loading = false;
      this.refreshBtn.classList.remove("is-busy");
      this.zone.removeAttribute("aria-busy");
      if (this.again) {
        this.again = false;
        this.refresh();
      }
    }
  }

  /** Draw the tree; `diff` (a fresh listing) flashes files that are new or changed. */
  render(data, { diff = true } = {}) {
    const tree = data.tree || [];
    if (diff) this.truncated = Boolean(data.truncated);
    const modified = new Map();
    this.entries.clear();
    const walk = (nodes) => {
      for (const n of nodes) {
        this.entries.set(n.path, n);
        modified.set(n.path, `${n.modified || ""}:${n.size}`);
        if (n.children) walk(n.children);
      }
    };
    walk(tree);
    if (this.previousModified && diff) {
      for (const [path, stamp] of modified) {
        if (this.previousModified.get(path) !== stamp && this.entries.get(path).type === "file") this.flash.add(path);
      }
    }
    if (diff || !this.previousModified) this.previousModified = modified;
    clear(this.treeStatus);
    if (this.truncated) this.treeStatus.append(h("p", { class: "muted small", text: "Large workspace: only part of it is listed." }));
    const focusedPath = document.activeElement && document.activeElement.closest && document.activeElement.closest(".tree")
      ? document.activeElement.dataset.path : null;
    clear(this.tree);
    if (!tree.length) {
      this.tree.append(h("li", { class: "tree-empty", role: "none" }, icon("folder-open", { size: 22 }),
        h("p", { text: "The workspace is empty." }), h("p", { class: "muted", text: "Drop files here or ask the agent to create some." })));
    } else {
      append(this.tree, [this.nodes(tree, 1)]);
    }
    this.syncTargets([...this.entries.values()].filter((e) => e.type === "directory").map((e) => e.path));
    this.rovingInit(focusedPath);
    const flashed = [...this.flash];
    this.flash.clear();
    for (const p of flashed) {
      const row = this.tree.querySelector(`[data-path="${cssEscape(p)}"]`);
      if (row) row.classList.add("flash");
    }
  }

  nodes(list, level) {
    const sorted = [...list].sort((a, b) => (a.type === b.type ? a.name.localeCompare(b.name) : a.type === "directory" ? -1 : 1));
    return sorted.map((n) => {
      const isDir = n.type === "directory";
      const open = isDir && this.expanded.has(n.path);
      const row = h("button", { type: "button", class: ["tree-row", isDir ? "is-dir" : "is-file", this.target === n.path && "is-target"],
        "data-path": n.path, "data-type": n.type, tabindex: "-1", title: n.path },
        isDir ? icon("chevron", { size: 12, cls: ["chev", open && "open"].filter(Boolean).join(" ") }) : h("span", { class: "chev-space" }),
        icon(isDir ? (open ? "folder-open" : "folder") : fileIcon(n.name), { size: 15, cls: "node-icon" }),
        h("span", { class: "node-name", text: n.name }),
        !isDir ? h("span", { class: "node-size", text: fmt.bytes(n.size) }) : null);
      row.addEventListener("click", () => (isDir ? this.toggle(n) : this.preview(n.path)));
      const actions = !isDir ? h("span", { class: "node-actions" },
        button(`Download ${n.name}`, { icon: "download", cls: "btn-icon btn-xs", iconOnly: true, tabindex: "-1",
          onClick: (e) => { e.stopPropagation(); this.download(n.path); } })) : null;
      const li = h("li", { role: "treeitem", "aria-level": String(level), "aria-label": n.name, "aria-expanded": isDir ? String(open) : null,
        "aria-selected": "false", class: "tree-item" }, h("div", { class: "tree-line" }, row, actions));
      if (isDir) {
        li.addEventListener("dragover", (e) => { e.preventDefault(); li.classList.add("drop-target"); this.setDropTarget(n.path); }, { capture: false });
        li.addEventListener("dragleave", () => li.classList.remove("drop-target"));
        if (open) {
          if (n.children) {
            li.append(h("ul", { role: "group", class: "tree-group" }, n.children.length
              ? this.nodes(n.children, level + 1) : h("li", { role: "none", class: "tree-empty-dir", text: "empty" })));
          } else {
            li.append(h("ul", { role: "group", class: "tree-group" }, h("li", { role: "none", class: "tree-empty-dir" }, spinner(12), " loading…")));
            this.loadChildren(n);
          }
        }
      }
      return li;
    });
  }

  async loadChildren(node) {
    try {
      const data = await api(`${filesPath(this.sessionId)}?path=${encodeURIComponent(node.path)}&depth=2`, { signal: this.ac.signal });
      const entry = this.entries.get(node.path);
      if (entry) entry.children = data.tree || [];
      node.children = data.tree || [];
      this.render({ tree: this.rootNodes() }, { diff: false });
    } catch (err) {
      if (err.name !== "AbortError") toast(err.message, { type: "error" });
    }
  }

  rootNodes() {
    return [...this.entries.values()].filter((e) => !e.path.includes("/"));
  }

  toggle(node) {
    if (this.expanded.has(node.path)) this.expanded.delete(node.path);
    else this.expanded.add(node.path);
    this.target = node.path;
    this.render({ tree: this.rootNodes() }, { diff: false });
    const row = this.tree.querySelector(`[data-path="${cssEscape(node.path)}"]`);
    if (row) { this.setRoving(row); row.focus(); }
  }

  // ------------------------------------------------------------- keyboard
  bindKeys() {
    this.tree.addEventListener("keydown", (e) => {
      const row = e.target.closest(".tree-row");
      if (!row) return;
      const rows = [...this.tree.querySelectorAll(".tree-row")];
      const i = rows.indexOf(row);
      const path = row.dataset.path;
      const entry = this.entries.get(path);
      let next;
      if (e.key === "ArrowDown") next = rows[i + 1];
      else if (e.key === "ArrowUp") next = rows[i - 1];
      else if (e.key === "Home") next = rows[0];
      else if (e.key === "End") next = rows[rows.length - 1];
      else if (e.key === "ArrowRight" && entry && entry.type === "directory" && !this.expanded.has(path)) { this.toggle(entry); e.preventDefault(); return; }
      else if (e.key === "ArrowLeft" && entry && entry.type === "directory" && this.expanded.has(path)) { this.toggle(entry); e.preventDefault(); return; }
      else if (e.key === "ArrowLeft" && path.includes("/")) next = this.tree.querySelector(`[data-path="${cssEscape(path.slice(0, path.lastIndexOf("/")))}"]`);
      else if (e.key === "Delete" && entry && entry.type === "file") { this.remove(path); e.preventDefault(); return; }
      else return;
      e.preventDefault();
      if (next) { this.setRoving(next); next.focus(); }
    });
  }

  rovingInit(focusedPath) {
    const rows = [...this.tree.querySelectorAll(".tree-row")];
    if (!rows.length) return;
    const keep = focusedPath && rows.find((r) => r.dataset.path === focusedPath);
    this.setRoving(keep || rows[0]);
    if (keep) keep.focus();
  }

  setRoving(row) {
    for (const r of this.tree.querySelectorAll(".tree-row[tabindex='0']")) r.tabIndex = -1;
    row.tabIndex = 0;
  }

  // --------------------------------------------------------------- targets
  syncTargets(dirs) {
    const current = this.target;
    fill(this.targetSelect, h("option", { value: "", text: "/workspace" }),
      dirs.sort().map((d) => h("option", { value: d, text: `/workspace/${d}` })));
    if (current && !dirs.includes(current)) this.target = "";
    this.targetSelect.value = this.target;
    this.syncTarget();
  }

  syncTarget() {
    for (const r of this.tree.querySelectorAll(".tree-row.is-target")) r.classList.remove("is-target");
    if (this.target) {
      const row = this.tree.querySelector(`[data-path="${cssEscape(this.target)}"]`);
      if (row) row.classList.add("is-target");
    }
    this.targetSelect.value = this.target;
    this.overlayText.textContent = `Drop files to upload to /workspace${this.target ? `/${this.target}` : ""}`;
  }

  setDropTarget(path) {
    if (this.dropTarget === path) return;
    this.dropTarget = path;
    this.overlayText.textContent = `Drop files to upload to /workspace${path ? `/${path}` : ""}`;
  }

  // ------------------------------------------------------------------ drop
  bindDrop() {
    let depth = 0;
    const hasFiles = (e) => e.dataTransfer && [...(e.dataTransfer.types || [])].includes("Files");
    this.el.addEventListener("dragenter", (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      depth += 1;
      this.dropTarget = this.target;
      this.el.classList.add("dragging");
    });
    this.el.addEventListener("dragover", (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = "copy";
      if (!e.target.closest || !e.target.closest(".tree-item")) this.setDropTarget(this.target);
    });
    this.el.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) this.el.classList.remove("dragging");
    });
    this.el.addEventListener("drop", (e) => {
      e.preventDefault();
      depth = 0;
      this.el.classList.remove("dragging");
      for (const li of this.el.querySelectorAll(".drop-target")) li.classList.remove("drop-target");
      const dirItem = e.target.closest && e.target.closest(".tree-item");
      const dirRow = dirItem && dirItem.querySelector(":scope > .tree-line > .tree-row.is-dir");
      const target = dirRow ? dirRow.dataset.path : (this.dropTarget ?? this.target);
      const files = [...((e.dataTransfer && e.dataTransfer.files) || [])];
      if (files.length) this.upload(files, target);
    });
  }

  // ---------------------------------------------------------------- upload
  upload(files, target = this.target) {
    for (const file of files) {
      const row = this.uploadRow(file, target);
      if (file.size > this.maxBytes) {
        row.fail(`Too large: ${fmt.bytes(file.size)} (the limit is ${this.maxUploadMb} MB a file)`);
        continue;
      }
      this.uploadQueue = this.uploadQueue.then(() => this.uploadOne(file, target, row));
    }
    return this.uploadQueue;
  }

  async uploadOne(file, target, row) {
    const dest = target ? `${target}/${file.name}` : file.name;
    let overwrite = false;
    const existing = this.entries.get(dest);
    if (existing) {
      if (existing.type === "directory") {
        row.fail(`A folder named ${file.name} already exists here`);
        return;
      }
      overwrite = await confirmDialog({ title: "Replace file?", message: `/workspace/${dest} already exists. Replace it with the file you are uploading?`, confirmLabel: "Replace" });
      if (!overwrite) {
        row.skip();
        return;
      }
    }
    for (;;) {
      row.start();
      try {
        await uploadFile(this.sessionId, file, { targetPath: target, overwrite, onProgress: (done, total) => row.progress(done, total), signal: this.ac.signal });
        row.ok();
        this.expandAncestors(dest);
        this.flash.add(dest);
        this.refreshSoon();
        return;
      } catch (err) {
        if (err instanceof ApiError && err.status === 409 && !overwrite) {
          overwrite = await confirmDialog({ title: "Replace file?", message: `/workspace/${dest} already exists. Replace it?`, confirmLabel: "Replace" });
          if (overwrite) continue;
          row.skip();
          return;
        }
        row.fail(err.status === 413 ? `Too large for the server: ${err.message}` : err.message);
        return;
      }
    }
  }

  refreshSoon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), 50);
  }

  uploadRow(file, target) {
    const bar = h("progress", { max: "100", value: "0", "aria-label": `Upload progress of ${file.name}` });
    const state = h("span", { class: "upload-state", text: "Waiting" });
    const remove = button("Dismiss", { icon: "x", cls: "btn-icon btn-xs", iconOnly: true });
    const li = h("li", { class: "upload", "data-name": file.name, "data-state": "waiting" },
      icon(fileIcon(file.name), { size: 14 }),
      h("div", { class: "upload-main" },
        h("div", { class: "upload-line" }, h("span", { class: "upload-name", text: file.name, title: `${target ? `${target}/` : ""}${file.name}` }),
          h("span", { class: "upload-size", text: fmt.bytes(file.size) })),
        bar, state),
      remove);
    remove.addEventListener("click", () => li.remove());
    this.uploads.prepend(li);
    const set = (s, text) => { li.dataset.state = s; state.textContent = text; };
    return {
      start: () => set("uploading", "Uploading…"),
      progress: (done, total) => { bar.value = Math.round((done / total) * 100); set("uploading", `${Math.round((done / total) * 100)}% · ${fmt.bytes(done)} of ${fmt.bytes(total)}`); },
      ok: () => { bar.value = 100; set("done", `Uploaded to /workspace/${target ? `${target}/` : ""}`); setTimeout(() => li.remove(), 8000); },
      fail: (message) => { bar.hidden = true; set("error", message); },
      skip: () => { bar.hidden = true; set("skipped", "Skipped (kept the existing file)"); setTimeout(() => li.remove(), 6000); },
    };
  }

  // ------------------------------------------------------------- downloads
  async download(path) {
    try {
      const resp = await api(`${filesPath(this.sessionId, path)}?download=1`, { raw: true, headers: { Accept: "*/*" } });
      const name = await saveResponse(resp, path.split("/").pop());
      toast(`Downloaded ${name}`, { type: "success", timeout: 2500 });
    } catch (err) {
      toast(`Download failed: ${err.message}`, { type: "error" });
    }
  }

  async downloadZip() {
    const t = toast("Preparing the workspace ZIP…", { timeout: 0 });
    try {
      const resp = await api(`${filesPath(this.sessionId)}/download`, { method: "POST", raw: true, headers: { Accept: "application/zip" } });
      await saveResponse(resp, "workspace.zip");
      t.remove();
      toast("Workspace downloaded", { type: "success", timeout: 2500 });
    } catch (err) {
      t.remove();
      toast(`ZIP download failed: ${err.message}`, { type: "error" });
    }
  }

  async remove(path) {
    const ok = await confirmDialog({ title: "Delete file?", message: `Delete /workspace/${path}? This cannot be undone.`, confirmLabel: "Delete", danger: true });
    if (!ok) return;
    try {
      await api(filesPath(this.sessionId, path), { method: "DELETE" });
      this.refresh();
    } catch (err) {
      toast(err.message, { type: "error" });
    }
  }

  // --------------------------------------------------------------- preview
  async preview(path) {
    const body = h("div", { class: "preview", "aria-busy": "true" }, h("p", { class: "muted" }, spinner(), " Loading…"));
    const meta = h("div", { class: "preview-meta" });
    const dl = button("Download", { icon: "download", cls: "btn", onClick: () => this.download(path) });
    const m = modal({ title: path, content: [meta, body], actions: [dl], wide: true, cls: "preview-dialog" });
    let objectUrl = null;
    m.closed.then(() => { if (objectUrl) URL.revokeObjectURL(objectUrl); });
    const entry = this.entries.get(path);
    try {
      if (IMAGE_EXT.test(path)) {
        const resp = await api(`${filesPath(this.sessionId, path)}?raw=1`, { raw: true, headers: { Accept: "image/*" } });
        const blob = await resp.blob();
        objectUrl = URL.createObjectURL(blob);
        meta.append(h("span", { class: "chip", text: blob.type || "image" }), h("span", { class: "chip", text: fmt.bytes(blob.size) }));
        fill(body, h("div", { class: "preview-image" }, h("img", { src: objectUrl, alt: path })));
      } else {
        const data = await api(filesPath(this.sessionId, path));
        meta.append(h("span", { class: "chip", text: data.language || languageFor(path) || "text" }),
          h("span", { class: "chip", text: fmt.bytes(data.size ?? (entry && entry.size)) }));
        if (data.binary) {
          fill(body, h("div", { class: "empty" }, icon("file", { size: 28 }), h("h3", { text: "Binary file" }),
            h("p", { text: "This file cannot be shown as text. Download it to open it." })));
        } else {
          const content = data.content || "";
          const language = normaliseLanguage(data.language) || languageFor(path);
          const views = [];
          const source = sourceView(content, language);
          clear(body);
          if (data.truncated) body.append(h("p", { class: "alert alert-warn small" }, icon("info"), h("span", { text: "Only the beginning of this large file is shown. Download it to see all of it." })));
          if (language === "markdown") {
            const rendered = h("div", { class: "md preview-md" });
            renderMarkdown(rendered, content);
            views.push(["Rendered", rendered], ["Source", source]);
            const tabs = h("div", { class: "seg", role: "tablist", "aria-label": "Preview mode" });
            const holder = h("div", { class: "preview-holder" });
            const show = (i) => {
              [...tabs.children].forEach((t, j) => { t.setAttribute("aria-selected", String(i === j)); t.tabIndex = i === j ? 0 : -1; });
              fill(holder, views[i][1]);
            };
            views.forEach(([label], i) => tabs.append(h("button", { type: "button", role: "tab", class: "seg-btn", text: label, onclick: () => show(i) })));
            meta.append(tabs);
            body.append(holder);
            show(0);
          } else {
            body.append(source);
          }
        }
      }
    } catch (err) {
      fill(body, errorBox(err, { title: "Could not open the file" }));
    }
    body.removeAttribute("aria-busy");
  }
}

function normaliseLanguage(lang) {
  if (!lang) return "";
  const l = String(lang).toLowerCase();
  return { text: "plaintext", shell: "bash", sh: "bash", html: "xml", toml: "ini" }[l] || l;
}

function sourceView(content, language) {
  const lines = content.split("\n");
  if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
  const gutter = h("pre", { class: "gutter", "aria-hidden": "true", text: lines.map((_, i) => i + 1).join("\n") });
  const code = h("code", {});
  highlightInto(code, content, language || "plaintext");
  return h("div", { class: "source-view", tabindex: "0", "aria-label": "File content" }, gutter, h("pre", { class: "source" }, code));
}

function fileIcon(name) {
  if (IMAGE_EXT.test(name)) return "image";
  if (/\.(zip|tar|gz|tgz|bz2|xz|7z)$/i.test(name)) return "archive";
  if (/\.(md|txt|rst|log|csv)$/i.test(name)) return "file-text";
  return "file";
}

function cssEscape(value) {
  return window.CSS && CSS.escape ? CSS.escape(value) : String(value).replace(/["\\]/g, "\\$&");
}
