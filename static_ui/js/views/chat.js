// A session: the chat timeline with live streaming, the task list and the workspace.
// A page refresh reloads the stored transcript and, if a turn is still running, resumes
// its stream with Last-Event-ID; a dropped connection does the same, with backoff.

import { api, ApiError, chatStream, filesPath, saveResponse, sessionPath } from "../api.js";
import { button, fill, h, icon, spinner } from "../dom.js";
import * as fmt from "../format.js";
import { forgetSession, getKey, onKeyChange, rememberSession } from "../store.js";
import { askForKey, errorBox, toast } from "../ui.js";
import { FilesPanel } from "./files.js";
import { TasksPanel } from "./tasks.js";
import { Timeline } from "./timeline.js";

const DEMO_PROMPTS = ["run: ls -la", "write hello.py: print('hello')", "todo: plan; build; test", "think: what next?"];

export function mount(root, [sessionId], { meta }) {
  const ac = new AbortController();
  let running = false;
  let streamAc = null;
  let followAbort = null;
  let disposed = false;

  // ------------------------------------------------------------------ layout
  const title = h("h1", { class: "chat-title", text: "Session" });
  const statusPill = h("span", { class: "pill", "data-status": "starting", text: "loading" });
  const idChip = button(fmt.shortId(sessionId), { icon: "copy", cls: "btn btn-xs btn-ghost mono", title: "Copy the session id",
    onClick: async () => { try { await navigator.clipboard.writeText(sessionId); toast("Session id copied", { timeout: 1500 }); } catch { /* no clipboard */ } } });
  const totals = h("div", { class: "totals", "aria-label": "Session usage" });
  const interruptBtn = button("Interrupt", { icon: "square", cls: "btn btn-danger-soft", hidden: true });
  const exportMenu = h("details", { class: "menu" },
    h("summary", { class: "btn btn-ghost btn-sm", "aria-label": "Export the conversation", title: "Export the conversation" }, icon("download"), h("span", { class: "hide-sm", text: "Export" })),
    h("div", { class: "menu-list", role: "menu" },
      button("Markdown (.md)", { icon: "file-text", cls: "menu-item", role: "menuitem", onClick: () => exportAs("markdown") }),
      button("JSON (.json)", { icon: "file", cls: "menu-item", role: "menuitem", onClick: () => exportAs("json") })));
  const banner = h("div", { class: "banner", role: "status", hidden: true });
  const log = h("div", { class: "timeline", role: "log", "aria-label": "Conversation", "aria-live": "polite", tabindex: "0" });
  const jump = button("Jump to latest", { icon: "chevron", cls: "btn btn-sm jump", hidden: true });
  const input = h("textarea", { class: "composer-input", rows: "1", placeholder: "Message the agent…", "aria-label": "Message",
    enterkeyhint: "send" });
  const sendBtn = button("Send", { icon: "send", cls: "btn btn-primary composer-send", type: "submit" });
  const composer = h("form", { class: "composer", "aria-label": "Send a message" },
    h("div", { class: "composer-box" }, input, sendBtn),
    h("div", { class: "composer-hint" },
      h("span", { class: "muted", text: "Enter to send · Shift+Enter for a new line" }),
      meta.demo ? h("span", { class: "suggestions" }, DEMO_PROMPTS.map((p) => h("button", { type: "button", class: "chip chip-btn", text: p,
        onclick: () => { input.value = p; autosize(); input.focus(); } }))) : null));

  const tasks = new TasksPanel();
  const files = new FilesPanel(sessionId, { maxUploadMb: meta.max_upload_mb || 50 });
  const timeline = new Timeline(log, {
    onTodos: (todos) => { tasks.update(todos); paneBadge("tasks", todos.filter((t) => t.status !== "completed").length); },
    onFilesTouched: (paths) => files.touched(paths),
    onStatus: (status) => setStatus(status),
    onUsage: (t) => renderTotals(t),
    onGrow: () => stickToBottom(),
    onOpenFile: (path) => files.preview(path),
    onImages: (el) => hydrateImages(el),
    onPermission: (requestId, decision) => api(`/api/agents/${encodeURIComponent(sessionId)}/permissions/${encodeURIComponent(requestId)}`,
      { method: "POST", body: { decision } }),
  });

  const paneTabs = h("div", { class: "pane-tabs", role: "tablist", "aria-label": "Session panes" },
    ["chat", "tasks", "files"].map((p) => h("button", { type: "button", role: "tab", class: "pane-tab", "data-pane": p,
      "aria-selected": p === "chat" ? "true" : "false", onclick: () => showPane(p) },
    icon({ chat: "message", tasks: "list-checks", files: "folder" }[p], { size: 15 }),
    h("span", { text: { chat: "Chat", tasks: "Tasks", files: "Files" }[p] }), h("span", { class: "pane-badge", hidden: true }))));

  const layout = h("div", { class: "chat-layout", "data-pane": "chat" },
    h("section", { class: "chat-main", "aria-label": "Chat" },
      h("header", { class: "chat-head" },
        h("div", { class: "chat-head-left" },
          h("a", { class: "btn-icon", href: "#/sessions", "aria-label": "All sessions", title: "All sessions" }, icon("chevron", { cls: "flip" })),
          h("div", { class: "chat-ident" },
            h("div", { class: "chat-title-row" }, title, statusPill),
            h("div", { class: "chat-sub" }, idChip, h("span", { class: "chat-config muted" })))),
        h("div", { class: "chat-head-right" }, totals, exportMenu, interruptBtn)),
      paneTabs,
      banner,
      h("div", { class: "timeline-wrap" }, log, jump),
      composer),
    h("aside", { class: "side", "aria-label": "Tasks and files" }, tasks.el, files.el));
  root.append(layout);

  // -------------------------------------------------------------- behaviour
  function showPane(p) {
    layout.dataset.pane = p;
    for (const t of paneTabs.querySelectorAll(".pane-tab")) t.setAttribute("aria-selected", String(t.dataset.pane === p));
    if (p === "files") files.refresh();
  }

  function paneBadge(p, n) {
    const b = paneTabs.querySelector(`[data-pane="${p}"] .pane-badge`);
    b.hidden = !n;
    b.textContent = n ? String(n) : "";
  }

  function setStatus(status) {
    statusPill.dataset.status = status;
    statusPill.textContent = status;
  }

  function setRunning(on) {
    running = on;
    interruptBtn.hidden = !on;
    sendBtn.disabled = on;
    composer.classList.toggle("is-running", on);
    timeline.setWorking(on);
    if (on) setStatus("busy");
    else if (statusPill.dataset.status === "busy") setStatus("running");
  }

  function renderTotals(t) {
    fill(totals, 
      h("span", { class: "stat", title: "Turns" }, icon("message", { size: 13 }), h("span", { text: fmt.plural(t.turns, "turn") })),
      h("span", { class: "stat", title: "Tokens in / out" }, icon("hash", { size: 13 }), h("span", { text: `${fmt.tokens(t.input)} in · ${fmt.tokens(t.output)} out` })),
      h("span", { class: "stat stat-cost", title: "Session cost" }, icon("coins", { size: 13 }), h("span", { text: fmt.cost(t.cost) })));
  }
  renderTotals(timeline.totals);

  let pinned = true;
  log.addEventListener("scroll", () => {
    pinned = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
    jump.hidden = pinned;
  });
  jump.addEventListener("click", () => { log.scrollTop = log.scrollHeight; });
  function stickToBottom() {
    if (pinned) log.scrollTop = log.scrollHeight;
    else jump.hidden = false;
  }

  function autosize() {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 220)}px`;
  }
  input.addEventListener("input", autosize);
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      composer.requestSubmit();
    }
  });
  composer.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text || running) return;
    send(text);
  });
  interruptBtn.addEventListener("click", interrupt);

  function showBanner(kind, text, action) {
    fill(banner, kind === "reconnecting" ? spinner(14) : icon(kind === "error" ? "alert" : "info", { size: 14 }),
      h("span", { text }), action || null);
    banner.dataset.kind = kind;
    banner.hidden = false;
  }
  function hideBanner() { banner.hidden = true; }

  // ------------------------------------------------------------------ turns
  async function send(text) {
    if (banner.dataset.kind !== "reconnecting") hideBanner();
    input.value = "";
    autosize();
    pinned = true;
    timeline.addPendingUser(text);
    stickToBottom();
    setRunning(true);
    streamAc = new AbortController();
    let gotDone = false;
    const onEvent = (ev) => { if (ev.type === "done") gotDone = true; timeline.handle(ev); if (ev.type === "done") setRunning(false); };
    try {
      await chatStream(sessionId, { message: text, signal: streamAc.signal, onEvent });
    } catch (err) {
      if (err.name === "AbortError" || disposed) return;
      if (err instanceof ApiError && err.status > 0) {
        // Refused before the turn started (busy, auth, validation): nothing was sent.
        timeline.dropPendingUser();
        setRunning(false);
        input.value = text;
        autosize();
        if (err.status === 401 || err.status === 403) keyProblem(err);
        else toast(err.message, { type: "error" });
        if (err.code === "busy") follow();
        return;
      }
    }
    if (!gotDone && !disposed) await follow();
  }

  /** Follow the running turn from the last seen event until `done` (reconnect with backoff). */
  async function follow() {
    if (followAbort) return;
    const myAc = new AbortController();
    followAbort = myAc;
    let attempt = 0;
    let gotDone = false;
    setRunning(true);
    try {
      while (!gotDone && !disposed && !myAc.signal.aborted) {
        if (attempt > 0) {
          showBanner("reconnecting", `Connection lost. Reconnecting (attempt ${attempt})…`);
          await backoff(attempt, myAc.signal);
          if (myAc.signal.aborted) return;
        }
        try {
          await chatStream(sessionId, {
            lastEventId: timeline.lastSeq,
            signal: myAc.signal,
            onEvent: (ev) => { if (ev.type === "done") gotDone = true; timeline.handle(ev); if (attempt) hideBanner(); },
          });
          if (gotDone) break;
          // The stream ended without `done`: is a turn still running?
          const d = await api(sessionPath(sessionId), { signal: myAc.signal });
          updateDetails(d);
          if (!d.busy) {
            // Finished while we were away: pick up whatever the transcript has.
            await loadTranscript(timeline.lastSeq, myAc.signal);
            break;
          }
        } catch (err) {
          if (err.name === "AbortError") return;
          if (err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 408 && err.status !== 429) {
            showBanner("error", err.message);
            break;
          }
        }
        attempt += 1;
      }
      hideBanner();
    } finally {
      if (followAbort === myAc) followAbort = null;
      if (!disposed) setRunning(false);
    }
  }

  async function exportAs(format) {
    exportMenu.open = false;
    try {
      const resp = await api(`${sessionPath(sessionId)}/export?format=${format}`, { raw: true, headers: { Accept: "*/*" } });
      await saveResponse(resp, `agcluster-${fmt.shortId(sessionId)}.${format === "markdown" ? "md" : "json"}`);
    } catch (err) {
      toast(`Export failed: ${err.message}`, { type: "error" });
    }
  }
  document.addEventListener("click", (e) => { if (!exportMenu.contains(e.target)) exportMenu.open = false; }, { signal: ac.signal });

  async function interrupt() {
    interruptBtn.disabled = true;
    try {
      const r = await api(`/api/agents/${encodeURIComponent(sessionId)}/interrupt`, { method: "POST" });
      toast(r.interrupted ? "Interrupting the turn…" : "Nothing to interrupt", { timeout: 2500 });
    } catch (err) {
      toast(err.message, { type: "error" });
    } finally {
      interruptBtn.disabled = false;
    }
  }

  window.addEventListener("online", () => { if (running && !followAbort) follow(); }, { signal: ac.signal });

  // -------------------------------------------------------------- loading
  async function loadTranscript(after = 0, signal = ac.signal) {
    for (;;) {
      const data = await api(`${sessionPath(sessionId)}/events?after=${after}&limit=5000`, { signal });
      for (const ev of data.events) timeline.handle(ev);
      if (data.events.length < 5000) return;
      after = data.last_seq;
    }
  }

  function updateDetails(d) {
    title.textContent = d.config_name || d.config_id;
    document.title = `${d.config_name || d.config_id} · AgCluster`;
    layout.querySelector(".chat-config").textContent = `${d.config_id} · ${d.provider}`;
    // status is where the machine is; busy says whether a turn runs on it.
    if (!running || d.status !== "running") setStatus(d.busy ? "busy" : d.status);
    if (d.status === "stopped" && !d.busy) showBanner("info", "This session's machine is stopped to save resources. Sending a message wakes it up; the conversation continues.");
    else if (d.status === "failed") showBanner("error", `The machine failed${d.status_detail ? `: ${d.status_detail}` : ""}. Sending a message tries to start it again.`);
    else if (banner.dataset.kind !== "reconnecting") hideBanner();
  }

  function keyProblem(err) {
    fill(log, h("div", { class: "gate" },
      icon("lock", { size: 28 }),
      h("h2", { text: err && err.status === 403 ? "This key does not open this session" : "Enter the API key for this session" }),
      h("p", { class: "muted", text: "Sessions are protected by the Anthropic API key that launched them. The key stays in this tab." }),
      button("Enter API key", { icon: "key", cls: "btn btn-primary", onClick: () => askForKey("Enter the key that launched this session.") })));
    composer.hidden = true;
  }

  async function load() {
    composer.hidden = false;
    if (!getKey()) {
      keyProblem();
      return;
    }
    fill(log, h("div", { class: "loading-log" }, spinner(18), h("span", { text: "Loading the conversation…" })));
    try {
      const d = await api(sessionPath(sessionId), { signal: ac.signal });
      rememberSession(sessionId);
      timeline.reset();
      updateDetails(d);
      await loadTranscript(0);
      if (timeline.isEmpty) {
        log.append(h("div", { class: "welcome" }, icon("sparkles", { size: 26 }),
          h("h2", { text: `${d.config_name || "Your agent"} is ready` }),
          h("p", { class: "muted", text: "Ask for something to be built, run or researched. Files the agent writes appear in the workspace panel; drop files there to share them." })));
      }
      log.scrollTop = log.scrollHeight;
      files.refresh();
      input.focus();
      if (d.busy) follow();
    } catch (err) {
      if (err.name === "AbortError") return;
      if (err.status === 401 || err.status === 403) return keyProblem(err);
      composer.hidden = true;
      if (err.status === 404) forgetSession(sessionId);
      fill(log, h("div", { class: "gate" }, errorBox(err, { title: err.status === 404 ? "Session not found" : "Could not open the session" }),
        h("div", { class: "row" }, h("a", { class: "btn", href: "#/sessions", text: "All sessions" }), h("a", { class: "btn btn-primary", href: "#/", text: "Launch a new agent" }))));
    }
  }

  const offKey = onKeyChange(() => { if (!running) load(); });

  async function hydrateImages(el) {
    for (const img of el.querySelectorAll("img[data-ws-src]")) {
      const path = fmt.workspacePath(img.dataset.wsSrc).replace(/^\.\//, "");
      img.removeAttribute("data-ws-src");
      try {
        const resp = await api(`${filesPath(sessionId, path)}?raw=1`, { raw: true, headers: { Accept: "image/*" }, signal: ac.signal });
        img.src = URL.createObjectURL(await resp.blob());
      } catch {
        img.replaceWith(h("span", { class: "muted", text: `[image: ${path}]` }));
      }
    }
  }

  // Dropping a file anywhere on the page must not navigate away from the session.
  const stopNav = (e) => { if (e.dataTransfer && [...e.dataTransfer.types].includes("Files")) e.preventDefault(); };
  window.addEventListener("dragover", stopNav, { signal: ac.signal });
  window.addEventListener("drop", stopNav, { signal: ac.signal });

  load();

  return () => {
    disposed = true;
    ac.abort();
    if (streamAc) streamAc.abort();
    if (followAbort) followAbort.abort();
    offKey();
    files.destroy();
    document.title = "AgCluster";
  };
}

function backoff(attempt, signal) {
  const ms = Math.min(10_000, 500 * 2 ** (attempt - 1)) * (0.8 + Math.random() * 0.4);
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

