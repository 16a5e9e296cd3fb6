// Boot: the hash router, the top bar and the server's runtime facts.

import { api, setAuthMode, tokenMode } from "./api.js";
import { button, clear, fill, h, icon } from "./dom.js";
import { ready as vendorReady, vendorMissing } from "./markdown.js";
import { getKey, getToken, onKeyChange } from "./store.js";
import { askForKey, keyLabel, toast } from "./ui.js";

const routes = [
  { pattern: /^#?\/?$/, nav: "launch", load: () => import("./views/launch.js") },
  { pattern: /^#\/launch$/, nav: "launch", load: () => import("./views/launch.js") },
  { pattern: /^#\/session\/([\w-]+)$/, nav: "sessions", load: () => import("./views/chat.js") },
  { pattern: /^#\/sessions$/, nav: "sessions", load: () => import("./views/sessions.js") },
  { pattern: /^#\/builder(?:\/([\w-]+))?$/, nav: "builder", load: () => import("./views/builder.js") },
];

let meta = { known_tools: [], permission_modes: [], setting_sources: [], max_upload_mb: 50, demo: false, provider: "" };
let current = null; // {cleanup}
let navToken = 0;

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

async function route() {
  const token = ++navToken;
  const hash = location.hash || "#/";
  const match = routes.map((r) => ({ r, m: hash.match(r.pattern) })).find((x) => x.m);
  if (current && current.cleanup) {
    try {
      current.cleanup();
    } catch {
      /* a view's cleanup must not block navigation */
    }
  }
  current = null;
  const main = document.getElementById("main");
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", Boolean(match && a.dataset.nav === match.r.nav));
    if (match && a.dataset.nav === match.r.nav) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (tokenMode() && !getToken()) {
    main.className = "view-signin";
    fill(main, h("section", { class: "page" }, h("div", { class: "gate" }, icon("lock", { size: 28 }),
      h("h2", { text: "Sign in to AgCluster" }),
      h("p", { class: "muted", text: "This server has accounts. Enter the AgCluster token your administrator gave you; it stays in this tab." }),
      button("Sign in", { icon: "key", cls: "btn btn-primary", onClick: () => askForKey() }))));
    return;
  }
  if (!match) {
    fill(main, h("section", { class: "page" },
      h("div", { class: "empty" }, icon("alert", { size: 28 }), h("h3", { text: "Page not found" }),
        h("a", { class: "btn btn-primary", href: "#/", text: "Go to launch" }))));
    return;
  }
  const mod = await match.r.load();
  if (token !== navToken) return;
  clear(main);
  main.className = `view-${match.r.nav}`;
  document.body.dataset.view = hash.startsWith("#/session/") ? "chat" : match.r.nav;
  current = { cleanup: mod.mount(main, match.m.slice(1), { meta, navigate }) };
}

function renderKeyStatus() {
  const btn = document.getElementById("key-status");
  clear(btn);
  const has = Boolean(getKey());
  btn.classList.toggle("has-key", has);
  btn.append(icon(has ? "key" : "lock"), h("span", { class: "key-status-text", text: keyLabel() }));
  btn.setAttribute("aria-label", has ? `API key set (${keyLabel()}); change it` : "Set your API key");
}

async function boot() {
  document.getElementById("key-status").addEventListener("click", () => askForKey());
  let hadToken = Boolean(getToken());
  onKeyChange(() => {
    renderKeyStatus();
    if (tokenMode() && Boolean(getToken()) !== hadToken) {
      hadToken = Boolean(getToken());
      route();
    }
  });
  renderKeyStatus();
  await vendorReady;
  try {
    meta = await api("/ui/meta.json");
  } catch {
    /* older server: fall back to defaults */
  }
  try {
    const health = await api("/health");
    const badge = document.getElementById("env-badge");
    badge.textContent = health.demo ? `${health.provider} · demo model` : health.provider;
    badge.title = `Provider: ${health.provider}${health.demo ? " (machines use the built-in scripted model)" : ""}`;
    badge.hidden = false;
    meta.demo = Boolean(health.demo);
    meta.auth_mode = health.auth_mode || "none";
    setAuthMode(meta.auth_mode);
    renderKeyStatus();
  } catch (err) {
    toast(err.message, { type: "error", timeout: 0 });
  }
  if (vendorMissing) {
    toast("Browser libraries are missing (run `make ui`); Markdown and highlighting are off.", { type: "error", timeout: 0 });
  }
  window.addEventListener("hashchange", route);
  route();
}

boot();
