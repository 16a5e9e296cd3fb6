// Toasts, modal dialogs (native <dialog>: focus trapping and Escape come for free) and
// the API-key prompt shared by every page.

import { button, h, icon } from "./dom.js";
import { tokenMode } from "./api.js";
import { getKey, getToken, maskKey, setKey, setToken } from "./store.js";

export function toast(message, { type = "info", timeout = 5000 } = {}) {
  const host = document.getElementById("toasts");
  const iconName = { error: "alert", success: "check-circle", info: "info" }[type] || "info";
  const el = h("div", { class: `toast toast-${type}`, role: type === "error" ? "alert" : "status" },
    icon(iconName), h("span", { class: "toast-text", text: message }),
    button("Dismiss", { icon: "x", cls: "btn-icon toast-close", iconOnly: true, onClick: () => el.remove() }));
  host.append(el);
  if (timeout) setTimeout(() => el.remove(), timeout);
  return el;
}

/** A modal dialog. Returns {dialog, body, close, closed} where `closed` resolves on close. */
export function modal({ title, content, actions = [], wide = false, cls = "", onClose } = {}) {
  const titleId = `dlg-${Math.random().toString(36).slice(2, 9)}`;
  const body = h("div", { class: "dialog-body" }, content);
  const footer = actions.length ? h("div", { class: "dialog-actions" }, actions) : null;
  const dialog = h("dialog", { class: ["dialog", wide && "dialog-wide", cls], "aria-labelledby": titleId },
    h("div", { class: "dialog-head" },
      h("h2", { id: titleId, class: "dialog-title", text: title }),
      button("Close", { icon: "x", cls: "btn-icon", iconOnly: true, onClick: () => dialog.close() })),
    body, footer);
  let resolveClosed;
  const closed = new Promise((r) => { resolveClosed = r; });
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (onClose) onClose(dialog.returnValue);
    resolveClosed(dialog.returnValue);
  });
  // A click on the backdrop (the dialog element itself, outside its box) closes it.
  dialog.addEventListener("mousedown", (e) => {
    if (e.target === dialog) {
      const r = dialog.getBoundingClientRect();
      if (e.clientX < r.left || e.clientX > r.right || e.clientY < r.top || e.clientY > r.bottom) dialog.close();
    }
  });
  document.body.append(dialog);
  dialog.showModal();
  return { dialog, body, close: (value = "") => dialog.close(value), closed };
}

export function confirmDialog({ title, message, confirmLabel = "Confirm", danger = false, cancelLabel = "Cancel" }) {
  return new Promise((resolve) => {
    let answer = false;
    const ok = button(confirmLabel, { cls: danger ? "btn btn-danger" : "btn btn-primary", onClick: () => { answer = true; m.close("ok"); } });
    const cancel = button(cancelLabel, { cls: "btn", onClick: () => m.close("cancel") });
    const m = modal({ title, content: h("p", { class: "dialog-message", text: message }), actions: [cancel, ok],
      onClose: () => resolve(answer) });
    ok.focus();
  });
}

/**
 * A small form in a dialog. fields: [{name, label, type, placeholder, help, required, value}];
 * a "checkbox" field gives true/false.
 * Resolves with {name: value} or null when cancelled.
 */
export function formDialog({ title, intro, fields, submitLabel = "Continue", note }) {
  return new Promise((resolve) => {
    let result = null;
    const form = h("form", { class: "form-stack", novalidate: true });
    if (intro) form.append(h("p", { class: "muted", text: intro }));
    for (const f of fields) {
      const id = `f-${f.name}-${Math.random().toString(36).slice(2, 7)}`;
      if (f.type === "checkbox") {
        form.append(h("div", { class: "field" },
          h("label", { class: "check" }, h("input", { id, name: f.name, type: "checkbox", checked: Boolean(f.value) }),
            h("span", { text: f.label })),
          f.help ? h("p", { class: "field-help", text: f.help }) : null));
        continue;
      }
      form.append(h("div", { class: "field" },
        h("label", { for: id, text: f.label }),
        h("input", { id, name: f.name, class: "input", type: f.type || "text", placeholder: f.placeholder || "", value: f.value || "",
          required: f.required, autocomplete: "off", spellcheck: "false" }),
        f.help ? h("p", { class: "field-help", text: f.help }) : null,
        h("p", { class: "field-error", "data-error-for": f.name, hidden: true })));
    }
    if (note) form.append(h("p", { class: "note" }, icon("lock"), h("span", { text: note })));
    const submit = button(submitLabel, { cls: "btn btn-primary", type: "submit" });
    const cancel = button("Cancel", { cls: "btn", onClick: () => m.close("cancel") });
    form.append(h("div", { class: "dialog-actions" }, cancel, submit));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const values = {};
      let ok = true;
      for (const f of fields) {
        const input = form.elements[f.name];
        if (f.type === "checkbox") {
          values[f.name] = input.checked;
          continue;
        }
        const err = form.querySelector(`[data-error-for="${f.name}"]`);
        values[f.name] = input.value;
        const missing = f.required && !input.value.trim();
        err.hidden = !missing;
        err.textContent = missing ? `${f.label} is required` : "";
        input.setAttribute("aria-invalid", missing ? "true" : "false");
        if (missing) ok = false;
      }
      if (!ok) return;
      result = values;
      m.close("ok");
    });
    const m = modal({ title, content: form, onClose: () => resolve(result) });
    const first = form.querySelector("input");
    if (first) first.focus();
  });
}

export const KEY_NOTE = "Your key is kept in this browser tab only (sessionStorage) and is sent only to this AgCluster " +
  "server, which holds it in memory to call Anthropic for you. It is never stored on disk and never reaches the agent's machine.";

/** Ask for the API key (and, with AUTH_MODE=token, the AgCluster token); "" when cancelled. */
export async function askForKey(reason) {
  const fields = [];
  if (tokenMode()) {
    fields.push({ name: "token", label: "AgCluster token", type: "password", placeholder: "agc_…", required: true, value: getToken(),
      help: "This server has accounts: your administrator gives you a token." });
  }
  fields.push({ name: "key", label: "Anthropic API key", type: "password", placeholder: "sk-ant-…", required: !tokenMode(), value: getKey() });
  const values = await formDialog({
    title: tokenMode() ? "Sign in" : "Anthropic API key",
    intro: reason || (tokenMode() ? "Your token opens your sessions; the Anthropic key is needed to launch and chat."
      : "Sessions are opened with the API key that launched them."),
    fields,
    submitLabel: "Save for this tab",
    note: KEY_NOTE,
  });
  if (!values) return "";
  if (values.token !== undefined) setToken(values.token);
  if (values.key.trim() || !tokenMode()) setKey(values.key);
  return values.key.trim() || (tokenMode() ? getToken() : "");
}

export function keyLabel() {
  const key = getKey();
  if (tokenMode() && !getToken()) return "Sign in";
  return key ? maskKey(key) : "No API key";
}

/** An inline error box for a failed action. */
export function errorBox(err, { title } = {}) {
  const message = err && err.message ? err.message : String(err);
  const details = err && err.details && Object.keys(err.details).length ? JSON.stringify(err.details) : "";
  return h("div", { class: "alert alert-error", role: "alert" },
    icon("alert"),
    h("div", {},
      title ? h("strong", { text: title }) : null,
      h("p", { text: message }),
      details ? h("p", { class: "alert-details", text: details }) : null));
}

export function emptyState({ iconName = "info", title, text, action }) {
  return h("div", { class: "empty" }, icon(iconName, { size: 28 }), h("h3", { text: title }),
    text ? h("p", { text }) : null, action || null);
}
