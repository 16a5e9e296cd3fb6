"""What every benchmark shares: sizes, the run context, launching sessions in bulk."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.baseline import Baseline
from bench.baseline import prepare as prepare_baseline
from bench.stack import ControlPlane, Lab, ModelProcess, new_key
from bench.stats import Table

# A fixed model time-to-first-token, so the model's share of every latency is known.
MODEL_TTFT = 0.25


@dataclass(frozen=True)
class Sizes:
    launches: int
    ttfe_rounds: int
    relay_deltas: int
    relay_rounds: int
    concurrency: tuple[int, ...]
    concurrency_docker: tuple[int, ...]
    concurrency_rounds: int
    streams: tuple[int, ...]
    cp_kill_turns: int
    machine_kill_sessions: int
    fly_launches: int
    malformed: int
    warm_variants_everywhere: bool


DEFAULT = Sizes(launches=8, ttfe_rounds=10, relay_deltas=10_000, relay_rounds=4, concurrency=(1, 10, 50),
                concurrency_docker=(1, 10),
                concurrency_rounds=2, streams=(100,), cp_kill_turns=4, machine_kill_sessions=4, fly_launches=8,
                malformed=1_000, warm_variants_everywhere=False)
FULL = Sizes(launches=20, ttfe_rounds=30, relay_deltas=20_000, relay_rounds=4, concurrency=(1, 5, 10, 20, 50),
             concurrency_docker=(1, 5, 10, 20),
             concurrency_rounds=2, streams=(100, 500, 1000), cp_kill_turns=10, machine_kill_sessions=10,
             fly_launches=20, malformed=1_000, warm_variants_everywhere=True)


@dataclass
class Context:
    sizes: Sizes
    full: bool
    lab: Lab
    profile: bool = True
    providers: tuple[str, ...] = ("local", "docker", "fly")
    seed: int = 1234
    drills: tuple[str, ...] = ()
    previous: dict[str, Any] = field(default_factory=dict)
    """bench/results.json as it was before this run (a partial drills run merges into it)."""
    baseline_ref: str | None = None
    """The older tree measured beside this one ("before" columns); None: none."""
    _model: ModelProcess | None = None
    _baseline: Baseline | str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def model(self) -> ModelProcess:
        if self._model is None:
            self._model = ModelProcess(self.lab).start()
        return self._model

    @property
    def baseline(self) -> Baseline | str:
        """The "before" tree, prepared once per run, or why there is none."""
        if self._baseline is None:
            self._baseline = prepare_baseline(self.lab, self.baseline_ref) if self.baseline_ref \
                else "no baseline asked for (--baseline none)"
        return self._baseline

    def control_plane(self, name: str, *, before: bool = False, **env: str) -> ControlPlane:
        """A control plane of this checkout, or of the baseline tree with ``before``."""
        tree = self.baseline if before else None
        if isinstance(tree, str):
            raise RuntimeError(tree)
        cp = ControlPlane(self.lab, name + ("-before" if before else ""), {"ANTHROPIC_BASE_URL": self.model.url,
                                                                            **env}, tree=tree)
        return cp.start()

    def profile_path(self, name: str) -> Path:
        return self.lab.root / f"{name}.pyspy.txt"


@dataclass
class Session:
    session_id: str
    key: str


def launch_one(cp: ControlPlane, body: dict[str, Any] | None = None) -> tuple[Session | None, float, str]:
    key = new_key()
    started = time.perf_counter()
    try:
        resp = cp.launch(key, body=body)
    except Exception as exc:  # noqa: BLE001 - reported as a failed launch
        return None, time.perf_counter() - started, f"{type(exc).__name__}"
    elapsed = time.perf_counter() - started
    if resp.status_code != 201:
        return None, elapsed, f"HTTP {resp.status_code}: {resp.text[:200]}"
    return Session(resp.json()["session_id"], key), elapsed, ""


def launch_many(cp: ControlPlane, count: int, parallel: int = 3) -> list[Session]:
    """Launch ``count`` sessions (a few at a time); raises if any launch fails."""
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        results = list(pool.map(lambda _i: launch_one(cp), range(count)))
    failures = [why for session, _t, why in results if session is None]
    if failures:
        raise RuntimeError(f"{len(failures)} of {count} launches failed: {failures[:3]}")
    return [s for s, _t, _w in results if s is not None]


def result(name: str, tables: list[Table], data: dict[str, Any], targets: list[dict[str, Any]] | None = None,
           **extra: Any) -> dict[str, Any]:
    return {"name": name, "tables": [t.as_dict() for t in tables], "data": data, "targets": targets or [], **extra}


def target(name: str, goal: str, measured: Any, verdict: str, unit: str = "") -> dict[str, Any]:
    return {"target": name, "goal": goal, "measured": measured, "unit": unit, "verdict": verdict}
