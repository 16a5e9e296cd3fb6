// The message box: grows with its text, Enter sends, Shift+Enter breaks the line, and in
// demo mode a few example prompts one click away.

import { button, h } from "../../dom.js";

const DEMO_PROMPTS = ["run: ls -la", "write hello.py: print('hello')", "todo: plan; build; test", "think: what next?"];

export class Composer {
  constructor({ demo, onSend }) {
    this.running = false;
    this.input = h("textarea", { class: "composer-input", rows: "1", placeholder: "Message the agent…", "aria-label": "Message", enterkeyhint: "send" });
    this.sendBtn = button("Send", { icon: "send", cls: "btn btn-primary composer-send", type: "submit" });
    this.el = h("form", { class: "composer", "aria-label": "Send a message" },
      h("div", { class: "composer-box" }, this.input, this.sendBtn),
      h("div", { class: "composer-hint" },
        h("span", { class: "muted", text: "Enter to send · Shift+Enter for a new line" }),
        demo ? h("span", { class: "suggestions" }, DEMO_PROMPTS.map((p) => h("button", { type: "button", class: "chip chip-btn", text: p,
          onclick: () => this.restore(p) }))) : null));
    this.input.addEventListener("input", () => this.autosize());
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.el.requestSubmit();
      }
    });
    this.el.addEventListener("submit", (e) => {
      e.preventDefault();
      const text = this.input.value.trim();
      if (!text || this.running) return;
      this.input.value = "";
      this.autosize();
      onSend(text);
    });
  }

  autosize() {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, 220)}px`;
  }

  /** Put text back (a refused message, or a suggestion) and focus it. */
  restore(text) {
    this.input.value = text;
    this.autosize();
    this.input.focus();
  }

  setRunning(on) {
    this.running = on;
    this.sendBtn.disabled = on;
    this.el.classList.toggle("is-running", on);
  }

  set hidden(value) {
    this.el.hidden = value;
  }

  focus() {
    this.input.focus();
  }
}
