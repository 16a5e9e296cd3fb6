"""The wire format shared by the control plane and the machine agent.

Both ends import this package and nothing of each other: one event schema (``events``),
one SSE framing (``sse``), one error body (``errors``) and the names both ends of the
machine protocol agree on (``protocol``), so a frame produced inside a machine reaches the
browser unchanged apart from its ``seq`` and ``session_id`` (docs/ARCHITECTURE.md).
"""
