// A session's turns over SSE: send a message and stream its events, or follow a turn that is
// already running (after a reload, a refusal with `busy`, or a dropped connection) from the
// last event seen, with Last-Event-ID and backoff, until its `done`.

import { api, ApiError, chatStream, sessionPath } from "../../api.js";

export class TurnStream {
  /**
   * hooks: onEvent(ev) (every event, in order), onRunning(bool), onRefused(err, text) (the
   * server refused the message before a turn began), onDetails(d) (fresh session details),
   * catchUp(after, signal) (load stored events after a seq), lastSeq() (the last seq shown),
   * banner (a Banner for reconnection notices).
   */
  constructor(sessionId, hooks) {
    this.sessionId = sessionId;
    this.hooks = hooks;
    this.sending = null; // AbortController of the POST that started a turn
    this.following = null; // AbortController of the follow loop
    this.disposed = false;
  }

  async send(text) {
    const { hooks } = this;
    hooks.onRunning(true);
    this.sending = new AbortController();
    let gotDone = false;
    const onEvent = (ev) => {
      if (ev.type === "done") gotDone = true;
      hooks.onEvent(ev);
      if (ev.type === "done") hooks.onRunning(false);
    };
    try {
      await chatStream(this.sessionId, { message: text, signal: this.sending.signal, onEvent });
    } catch (err) {
      if (err.name === "AbortError" || this.disposed) return;
      if (err instanceof ApiError && err.status > 0) {
        // Refused before the turn started (busy, auth, validation): nothing was sent.
        hooks.onRunning(false);
        hooks.onRefused(err, text);
        if (err.code === "busy") this.follow();
        return;
      }
    }
    if (!gotDone && !this.disposed) await this.follow();
  }

  /** Follow the running turn from the last seen event until `done` (reconnect with backoff). */
  async follow() {
    if (this.following) return;
    const { hooks } = this;
    const ac = new AbortController();
    this.following = ac;
    let attempt = 0;
    let gotDone = false;
    hooks.onRunning(true);
    try {
      while (!gotDone && !this.disposed && !ac.signal.aborted) {
        if (attempt > 0) {
          hooks.banner.show("reconnecting", `Connection lost. Reconnecting (attempt ${attempt})…`);
          await backoff(attempt, ac.signal);
          if (ac.signal.aborted) return;
        }
        try {
          await chatStream(this.sessionId, {
            lastEventId: hooks.lastSeq(),
            signal: ac.signal,
            onEvent: (ev) => {
              if (ev.type === "done") gotDone = true;
              hooks.onEvent(ev);
              if (attempt) hooks.banner.hide();
            },
          });
          if (gotDone) break;
          // The stream ended without `done`: is a turn still running?
          const d = await api(sessionPath(this.sessionId), { signal: ac.signal });
          hooks.onDetails(d);
          if (!d.busy) {
            // Finished while we were away: pick up whatever the transcript has.
            await hooks.catchUp(hooks.lastSeq(), ac.signal);
            break;
          }
        } catch (err) {
          if (err.name === "AbortError") return;
          if (err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 408 && err.status !== 429) {
            hooks.banner.show("error", err.message);
            break;
          }
        }
        attempt += 1;
      }
      if (hooks.banner.kind === "reconnecting") hooks.banner.hide();
    } finally {
      if (this.following === ac) this.following = null;
      if (!this.disposed) hooks.onRunning(false);
    }
  }

  /** A follow is pending (e.g. the browser came back online) and none is running. */
  get idle() {
    return !this.following;
  }

  dispose() {
    this.disposed = true;
    if (this.sending) this.sending.abort();
    if (this.following) this.following.abort();
  }
}

function backoff(attempt, signal) {
  const ms = Math.min(10_000, 500 * 2 ** (attempt - 1)) * (0.8 + Math.random() * 0.4);
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
  });
}
