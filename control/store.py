"""SQLite: sessions, their event transcripts and custom configs.

Nothing else in the process holds state that a restart would lose (the user's key is the
deliberate exception: it lives in memory only, see docs/ARCHITECTURE.md). WAL mode lets
readers stream transcripts while a turn is being written; migrations are forward-only and
numbered. A session's status changes only through :meth:`Store.set_status`, which applies
the state machine of ``control.session_status`` inside its transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from control.session_status import SessionStatus, transition
from wire.sse import Frame

TOKEN_USE_RESOLUTION = 60.0
"""Seconds: a token's ``last_used_at`` is rewritten at most this often."""

MIGRATIONS: list[str] = [
    # 1: sessions and transcripts
    """
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        agent_id TEXT NOT NULL,
        config_id TEXT NOT NULL,
        config_json TEXT NOT NULL,
        provider TEXT NOT NULL,
        machine_id TEXT,
        machine_url TEXT,
        status TEXT NOT NULL,
        status_detail TEXT NOT NULL DEFAULT '',
        key_salt TEXT NOT NULL,
        key_hash TEXT NOT NULL,
        claude_session_id TEXT,
        created_at REAL NOT NULL,
        last_active_at REAL NOT NULL,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        cache_read_tokens INTEGER NOT NULL DEFAULT 0,
        cache_write_tokens INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL NOT NULL DEFAULT 0,
        turns INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE events (
        session_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        ts REAL NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (session_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE custom_configs (
        id TEXT PRIMARY KEY,
        owner TEXT,
        config_json TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    """,
    # 2: machines are named by a key of their own, so a warm-pool machine (started before
    # its session existed) keeps its name, storage and token when a session claims it.
    """
    ALTER TABLE sessions ADD COLUMN machine_key TEXT NOT NULL DEFAULT '';
    UPDATE sessions SET machine_key = id WHERE machine_key = ''
    """,
    # 3: accounts, ownership, metering and the audit log
    """
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id),
        token_hash TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        created_at REAL NOT NULL,
        revoked_at REAL,
        last_used_at REAL
    );
    ALTER TABLE sessions ADD COLUMN owner TEXT;
    CREATE INDEX sessions_owner ON sessions(owner);
    CREATE TABLE usage_records (
        ts REAL NOT NULL,
        day TEXT NOT NULL,
        session_id TEXT NOT NULL,
        owner TEXT,
        model TEXT NOT NULL DEFAULT '',
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cache_read_tokens INTEGER NOT NULL,
        cache_write_tokens INTEGER NOT NULL,
        cost_usd REAL NOT NULL
    );
    CREATE INDEX usage_owner_day ON usage_records(owner, day);
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        actor TEXT,
        action TEXT NOT NULL,
        target TEXT,
        outcome TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT '{}'
    )
    """,
    # 4: the CLI's own transcript, mirrored so a fresh machine can resume the conversation
    """
    CREATE TABLE cli_transcripts (
        session_id TEXT NOT NULL,
        project_key TEXT NOT NULL,
        claude_session_id TEXT NOT NULL,
        subpath TEXT NOT NULL DEFAULT '',
        n INTEGER NOT NULL,
        uuid TEXT,
        entry TEXT NOT NULL,
        PRIMARY KEY (session_id, project_key, claude_session_id, subpath, n)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX cli_transcripts_uuid
        ON cli_transcripts(session_id, project_key, claude_session_id, subpath, uuid)
    """,
    # 5: one status for "the machine is up": whether a turn runs is the turn hub's to say
    """
    UPDATE sessions SET status = 'running' WHERE status = 'ready'
    """,
    # 6: a saved config is its owner's alone (AUTH_MODE=token) until an admin shares it;
    # replacing a config's content takes the share away again
    """
    ALTER TABLE custom_configs ADD COLUMN shared INTEGER NOT NULL DEFAULT 0
    """,
]

SESSION_FIELDS = (
    "id", "agent_id", "config_id", "config_json", "provider", "machine_id", "machine_url", "status",
    "status_detail", "key_salt", "key_hash", "claude_session_id", "created_at", "last_active_at",
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd", "turns", "machine_key",
    "owner",
)


@dataclass
class SessionRow:
    id: str
    agent_id: str
    config_id: str
    config_json: str
    provider: str
    machine_id: str | None
    machine_url: str | None
    status: SessionStatus
    status_detail: str
    key_salt: str
    key_hash: str
    claude_session_id: str | None
    created_at: float
    last_active_at: float
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    turns: int = 0
    machine_key: str = ""
    owner: str | None = None

    def __post_init__(self) -> None:
        self.status = SessionStatus(self.status)
        self.machine_key = self.machine_key or self.id

    @cached_property
    def config(self) -> dict[str, Any]:
        """Parsed on first use only: the relay reads a row on every model call and never
        needs the config."""
        parsed: dict[str, Any] = json.loads(self.config_json)
        return parsed


def _event_of(session_id: str, seq: int, type_: str, data: str | bytes) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except ValueError:  # UnicodeDecodeError included
        event = None
    if isinstance(event, dict):
        return event
    return {"type": "error", "ts": 0.0, "code": "unreadable_event", "seq": seq, "session_id": session_id,
            "message": f"the machine sent a {type_[:40]!r} event that is not a JSON object"}


def private_dir(path: Path) -> None:
    """The data directory is the control plane's alone (0700). One that already exists is
    tightened only when it is ours and not a shared directory such as /tmp (sticky)."""
    if not path.exists():
        path.mkdir(parents=True, mode=0o700)
        os.chmod(path, 0o700)
        return
    info = path.stat()
    if info.st_uid == os.geteuid() and not info.st_mode & stat.S_ISVTX and info.st_mode & 0o077:
        os.chmod(path, 0o700)


class Store:
    def __init__(self, path: Path) -> None:
        private_dir(path.parent)
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()
        for suffix in ("", "-wal", "-shm"):  # transcripts and hashes are nobody else's to read
            candidate = path.with_name(path.name + suffix)
            if candidate.exists():
                os.chmod(candidate, 0o600)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._tx() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")

    # sessions -------------------------------------------------------------------------
    def insert_session(self, row: SessionRow) -> None:
        transition(None, row.status)  # a session begins as starting
        values = [getattr(row, name) for name in SESSION_FIELDS]
        with self._tx() as db:
            db.execute(f"INSERT INTO sessions ({','.join(SESSION_FIELDS)}) VALUES ({','.join('?' * len(values))})",
                       values)

    def get_session(self, session_id: str) -> SessionRow | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return SessionRow(**dict(row)) if row else None

    def session_for_machine(self, machine_key: str) -> SessionRow | None:
        """The session that claimed this machine (the relay's way from a machine to a key)."""
        with self._lock:
            row = self._db.execute("SELECT * FROM sessions WHERE machine_key = ? ORDER BY created_at DESC LIMIT 1",
                                   (machine_key,)).fetchone()
        return SessionRow(**dict(row)) if row else None

    def cli_bytes(self, session_id: str) -> int:
        """How much of the CLI's transcript this session has mirrored (capped per session)."""
        with self._lock:
            row = self._db.execute("SELECT COALESCE(SUM(LENGTH(entry)), 0) FROM cli_transcripts WHERE session_id = ?",
                                   (session_id,)).fetchone()
        return int(row[0])

    def list_sessions(self, owner: str | None = None) -> list[SessionRow]:
        """Every session, or only ``owner``'s."""
        with self._lock:
            if owner is None:
                rows = self._db.execute("SELECT * FROM sessions ORDER BY created_at DESC").fetchall()
            else:
                rows = self._db.execute("SELECT * FROM sessions WHERE owner = ? ORDER BY created_at DESC",
                                        (owner,)).fetchall()
        return [SessionRow(**dict(r)) for r in rows]

    def update_session(self, session_id: str, **changes: Any) -> None:
        """Change anything but the status (that is :meth:`set_status`)."""
        unknown = set(changes) - set(SESSION_FIELDS)
        if unknown:
            raise ValueError(f"unknown session fields {unknown}")
        if {"status", "status_detail"} & set(changes):
            raise ValueError("a session's status changes only through set_status")
        if not changes:
            return
        assignments = ", ".join(f"{k} = ?" for k in changes)
        with self._tx() as db:
            db.execute(f"UPDATE sessions SET {assignments} WHERE id = ?", [*changes.values(), session_id])

    def set_status(self, session_id: str, status: SessionStatus, detail: str = "", **changes: Any) -> bool:
        """Move a session to ``status`` (and apply ``changes``) if the state machine allows
        it, atomically: raises ``IllegalTransition`` otherwise. False when there is no
        such session (deleted meanwhile)."""
        unknown = set(changes) - set(SESSION_FIELDS) | ({"status", "status_detail"} & set(changes))
        if unknown:
            raise ValueError(f"unknown or reserved session fields {unknown}")
        values = {"status": str(status), "status_detail": detail[:1000], **changes}
        assignments = ", ".join(f"{k} = ?" for k in values)
        with self._tx() as db:
            row = db.execute("SELECT status FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if row is None:
                return False
            transition(row[0], status)
            db.execute(f"UPDATE sessions SET {assignments} WHERE id = ?", [*values.values(), session_id])
        return True

    def add_usage(self, session_id: str, *, input_tokens: int = 0, output_tokens: int = 0,
                  cache_read_tokens: int = 0, cache_write_tokens: int = 0, cost_usd: float = 0.0,
                  owner: str | None = None, model: str = "") -> None:
        """One metered model request: the session's totals and a dated record for reports."""
        now = time.time()
        with self._tx() as db:
            db.execute(
                "INSERT INTO usage_records (ts, day, session_id, owner, model, input_tokens, output_tokens, "
                "cache_read_tokens, cache_write_tokens, cost_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (now, time.strftime("%Y-%m-%d", time.gmtime(now)), session_id, owner, model, input_tokens,
                 output_tokens, cache_read_tokens, cache_write_tokens, cost_usd),
            )
            db.execute(
                "UPDATE sessions SET input_tokens = input_tokens + ?, output_tokens = output_tokens + ?, "
                "cache_read_tokens = cache_read_tokens + ?, cache_write_tokens = cache_write_tokens + ?, "
                "cost_usd = cost_usd + ? WHERE id = ?",
                (input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, session_id),
            )

    def delete_session(self, session_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM events WHERE session_id = ?", (session_id,))
            db.execute("DELETE FROM cli_transcripts WHERE session_id = ?", (session_id,))
            db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    # transcript -----------------------------------------------------------------------
    def last_seq(self, session_id: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT MAX(seq) FROM events WHERE session_id = ?", (session_id,)).fetchone()
        return int(row[0] or 0)

    def append_frames(self, session_id: str, frames: list[Frame]) -> None:
        """Store numbered events exactly as clients get them (bytes in, the same bytes out):
        one transaction per batch, nothing decoded. ``ts`` is when the row was written."""
        if not frames:
            return
        now = time.time()
        with self._tx() as db:
            db.executemany("INSERT INTO events (session_id, seq, type, ts, data) VALUES (?, ?, ?, ?, ?)",
                           [(session_id, f.seq, f.type, now, f.data) for f in frames])

    def frames_after(self, session_id: str, after: int = 0, limit: int = 10_000) -> list[Frame]:
        """The transcript as frames, byte for byte what live followers were sent."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, type, data FROM events WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (session_id, after, limit),
            ).fetchall()
        return [Frame(seq, type_, data if isinstance(data, bytes) else data.encode()) for seq, type_, data in rows]

    def events_after(self, session_id: str, after: int = 0, limit: int = 10_000) -> list[dict[str, Any]]:
        """The transcript as dicts. An event a broken machine sent as something other than
        JSON is stored as sent; it reads back as an ``error`` in its place, never a failure."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, type, data FROM events WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (session_id, after, limit),
            ).fetchall()
        return [_event_of(session_id, seq, type_, data) for seq, type_, data in rows]

    # custom configs -------------------------------------------------------------------
    def save_config(self, config_id: str, config: dict[str, Any], owner: str | None = None) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO custom_configs (id, owner, config_json, created_at) VALUES (?, ?, ?, ?)",
                       (config_id, owner, json.dumps(config), time.time()))

    def get_config(self, config_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT config_json FROM custom_configs WHERE id = ?", (config_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def get_config_owner(self, config_id: str) -> str | None:
        """The saved owner hash ("" when none was recorded), or None when there is no such config."""
        with self._lock:
            row = self._db.execute("SELECT owner FROM custom_configs WHERE id = ?", (config_id,)).fetchone()
        return None if row is None else (row[0] or "")

    def list_configs(self) -> list[tuple[dict[str, Any], str, bool]]:
        """Every custom config with its stored owner and whether an admin shared it."""
        with self._lock:
            rows = self._db.execute("SELECT config_json, owner, shared FROM custom_configs ORDER BY id").fetchall()
        return [(json.loads(r[0]), r[1] or "", bool(r[2])) for r in rows]

    def config_shared(self, config_id: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT shared FROM custom_configs WHERE id = ?", (config_id,)).fetchone()
        return bool(row and row[0])

    def share_config(self, config_id: str, shared: bool) -> bool:
        with self._tx() as db:
            return db.execute("UPDATE custom_configs SET shared = ? WHERE id = ?",
                              (int(shared), config_id)).rowcount > 0

    def delete_config(self, config_id: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM custom_configs WHERE id = ?", (config_id,)).rowcount > 0

    # accounts -------------------------------------------------------------------------
    def add_user(self, user_id: str, name: str, role: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO users (id, name, role, created_at) VALUES (?, ?, ?, ?)",
                       (user_id, name, role, time.time()))

    def get_user(self, *, user_id: str | None = None, name: str | None = None) -> dict[str, Any] | None:
        column, value = ("id", user_id) if user_id is not None else ("name", name)
        with self._lock:
            row = self._db.execute(f"SELECT * FROM users WHERE {column} = ?", (value,)).fetchone()
        return dict(row) if row else None

    def list_users(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._db.execute("SELECT * FROM users ORDER BY name").fetchall()]

    def add_token(self, token_id: str, user_id: str, token_hash: str, prefix: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO api_tokens (id, user_id, token_hash, prefix, created_at) VALUES (?, ?, ?, ?, ?)",
                       (token_id, user_id, token_hash, prefix, time.time()))

    def user_for_token_hash(self, token_hash: str) -> dict[str, Any] | None:
        """The user an active token belongs to. Using it is recorded as the token's
        ``last_used_at``, at most once per :data:`TOKEN_USE_RESOLUTION`: every authenticated
        request gets here, and a write per request would cost more than the request."""
        with self._lock:
            row = self._db.execute(
                "SELECT users.*, api_tokens.id AS token_id, api_tokens.last_used_at AS token_last_used_at "
                "FROM api_tokens JOIN users ON users.id = api_tokens.user_id "
                "WHERE api_tokens.token_hash = ? AND api_tokens.revoked_at IS NULL", (token_hash,)).fetchone()
        if row is None:
            return None
        now = time.time()
        if row["token_last_used_at"] is None or now - row["token_last_used_at"] >= TOKEN_USE_RESOLUTION:
            with self._tx() as db:
                db.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (now, row["token_id"]))
        return dict(row)

    def revoke_token(self, token_id_or_prefix: str) -> int:
        with self._tx() as db:
            return db.execute("UPDATE api_tokens SET revoked_at = ? "
                              "WHERE (id = ? OR prefix = ?) AND revoked_at IS NULL",
                              (time.time(), token_id_or_prefix, token_id_or_prefix)).rowcount

    def get_token(self, token_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT id, user_id, prefix, created_at, revoked_at, last_used_at FROM api_tokens "
                                   "WHERE id = ?", (token_id,)).fetchone()
        return dict(row) if row else None

    def list_tokens(self, user_id: str | None = None) -> list[dict[str, Any]]:
        query = "SELECT id, user_id, prefix, created_at, revoked_at, last_used_at FROM api_tokens"
        with self._lock:
            rows = (self._db.execute(query + " WHERE user_id = ?", (user_id,)) if user_id
                    else self._db.execute(query)).fetchall()
        return [dict(r) for r in rows]

    # metering -------------------------------------------------------------------------
    def usage_since(self, owner: str | None, since: float) -> dict[str, float]:
        with self._lock:
            row = self._db.execute(
                "SELECT COALESCE(SUM(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens), 0), "
                "COALESCE(SUM(cost_usd), 0) FROM usage_records WHERE owner IS ? AND ts >= ?", (owner, since)).fetchone()
        return {"tokens": float(row[0]), "cost_usd": float(row[1])}

    def usage_report(self, group_by: str, owner: str | None = None, all_owners: bool = False,
                     since_day: str | None = None) -> list[dict[str, Any]]:
        """Usage grouped by user, session or UTC day, optionally from ``since_day``
        (YYYY-MM-DD) on. Session rows also name the owner and, while the session exists,
        its config and status (usage outlives a deleted session)."""
        column = {"user": "u.owner", "session": "u.session_id", "day": "u.day"}[group_by]
        clauses: list[str] = []
        args: list[Any] = []
        if not all_owners:
            clauses.append("u.owner IS ?")
            args.append(owner)
        if since_day:
            clauses.append("u.day >= ?")
            args.append(since_day)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        extra, join = "", ""
        if group_by == "session":
            extra = ", MAX(u.owner) AS owner, MAX(s.config_id) AS config_id, MAX(s.status) AS status"
            join = "LEFT JOIN sessions s ON s.id = u.session_id"
        with self._lock:
            rows = self._db.execute(
                f"SELECT {column} AS key, COUNT(*) AS requests, SUM(u.input_tokens) AS input_tokens, "
                "SUM(u.output_tokens) AS output_tokens, SUM(u.cache_read_tokens) AS cache_read_tokens, "
                f"SUM(u.cache_write_tokens) AS cache_write_tokens, SUM(u.cost_usd) AS cost_usd{extra} "
                f"FROM usage_records u {join} {where} GROUP BY {column} ORDER BY {column}", args).fetchall()
        return [dict(r) for r in rows]

    def count_launches_since(self, owner: str | None, since: float) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM audit_log WHERE actor IS ? AND action = 'session.launch' "
                                        "AND outcome = 'ok' AND ts >= ?", (owner, since)).fetchone()[0])

    # audit ----------------------------------------------------------------------------
    def audit(self, actor: str | None, action: str, target: str | None, outcome: str,
              details: dict[str, Any] | None = None) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO audit_log (ts, actor, action, target, outcome, details) VALUES (?, ?, ?, ?, ?, ?)",
                       (time.time(), actor, action, target, outcome, json.dumps(details or {})))

    def audit_entries(self, limit: int = 500, actor: str | None = None,
                      action: str | None = None) -> list[dict[str, Any]]:
        clauses, args = [], []
        if actor:
            clauses.append("actor = ?")
            args.append(actor)
        if action:
            clauses.append("action = ?")
            args.append(action)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM audit_log {where} ORDER BY id DESC LIMIT ?",
                                    (*args, limit)).fetchall()
        return [{**dict(r), "details": json.loads(r["details"])} for r in rows]

    # the CLI's transcript mirror -------------------------------------------------------
    def append_cli_entries(self, session_id: str, key: dict[str, Any], entries: list[dict[str, Any]]) -> None:
        """Entries with a uuid are idempotent (the SDK retries); others are appended."""
        ident = (session_id, key["project_key"], key["session_id"], key.get("subpath") or "")
        with self._tx() as db:
            n = db.execute("SELECT COALESCE(MAX(n), 0) FROM cli_transcripts WHERE session_id = ? AND project_key = ? "
                           "AND claude_session_id = ? AND subpath = ?", ident).fetchone()[0]
            for entry in entries:
                n += 1
                db.execute("INSERT OR IGNORE INTO cli_transcripts VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (*ident, n, entry.get("uuid"), json.dumps(entry, separators=(",", ":"))))

    def load_cli_entries(self, session_id: str, key: dict[str, Any]) -> list[dict[str, Any]] | None:
        ident = (session_id, key["project_key"], key["session_id"], key.get("subpath") or "")
        with self._lock:
            rows = self._db.execute("SELECT entry FROM cli_transcripts WHERE session_id = ? AND project_key = ? AND "
                                    "claude_session_id = ? AND subpath = ? ORDER BY n", ident).fetchall()
        return [json.loads(r[0]) for r in rows] or None

    def cli_subkeys(self, session_id: str, key: dict[str, Any]) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT subpath FROM cli_transcripts WHERE session_id = ? AND "
                                    "project_key = ? AND claude_session_id = ? AND subpath != ''",
                                    (session_id, key["project_key"], key["session_id"])).fetchall()
        return [r[0] for r in rows]
