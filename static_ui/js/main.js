// Boot: the hash router, the top bar and the server's runtime facts.

import { me, refreshMe } from "./account.js";
import { api, onUnauthorized, setAuthMode, tokenMode } from "./api.js";
import { button, clear, fill, h, icon } from "./dom.js";
import { ready as vendorReady, vendorMissing } from "./markdown.js";
import { getKey, getToken, onKeyChange } from "./store.js";
import { askForKey, errorBox, keyLabel, toast } from "./ui.js";

const routes = [
  { pattern: /^#?\/?$/, nav: "launch", load: () => import("./views/launch.js") },
  { pattern: /^#\/launch$/, nav: "launch", load: () => import("./views/launch.js") },
  { pattern: /^#\/session\/([\w-]+)$/, nav: "sessions", load: () => import("./views/chat.js") },
  { pattern: /^#\/sessions$/, nav: "sessions", load: () => import("./views/sessions.js") },
  { pattern: /^#\/builder(?:\/([\w-]+))?$/, nav: "builder", load: () => import("./views/builder/page.js") },
  { pattern: /^#\/team$/, nav: "team", load: () => import("./views/team.js") },
  { pattern: /^#\/usage$/, nav: "usage", load: () => import("./views/usage.js") },
  { pattern: /^#\/audit$/, nav: "audit", load: () => import("./views/audit.js") },
];

let meta = {}; // /ui/meta.json: the server's lists (empty when it could not be read)
let current = null; // {cleanup}
let navToken = 0;
let meFor = null; // the token `me()` was last read with (null: not read yet)
let meError = null; // why the server refused that token

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
  if (meFor !== getToken()) {
    meFor = getToken();
    meError = null;
    try {
      await refreshMe();
    } catch (err) {
      meError = err;
    }
    if (token !== navToken) return;
    showNav();
  }
  const refused = meError;
  if (tokenMode() && (!getToken() || refused)) {
    main.className = "view-signin";
    fill(main, h("section", { class: "page" }, h("div", { class: "gate" }, icon("lock", { size: 28 }),
      h("h2", { text: "Sign in to AgCluster" }),
      refused ? errorBox(refused, { title: refused.status === 401 ? "That token was not accepted (revoked or mistyped)" : "Could not sign in" }) : null,
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

/** Team, Usage and Audit only where they can answer: accounts, or the local operator. */
function showNav() {
  const who = me();
  const show = { team: tokenMode(), usage: tokenMode() || who.admin, audit: who.admin };
  for (const [nav, visible] of Object.entries(show)) document.querySelector(`[data-nav="${nav}"]`).hidden = !visible;
  const badge = document.getElementById("user-badge");
  badge.hidden = !who.user;
  badge.textContent = who.user ? `${who.user.name}${who.admin ? " · admin" : ""}` : "";
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
  let lastToken = getToken();
  onKeyChange(() => {
    renderKeyStatus();
    if (tokenMode() && getToken() !== lastToken) {
      lastToken = getToken();
      route();  // another account: what it may see differs
    }
  });
  // A token revoked while this tab uses it: ask again instead of failing page by page.
  onUnauthorized(() => {
    meFor = null;
    route();
  });
  renderKeyStatus();
  await vendorReady;
  try {
    meta = await api("/ui/meta.json");
  } catch (err) {
    toast(`Could not read the server's settings (/ui/meta.json): ${err.message}`, { type: "error", timeout: 0 });
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
