"""The wire format shared by the control plane and the machine agent.

Both ends import this package and nothing of each other: one event schema (§5),
one SSE framing and one error body, so a frame produced inside a machine reaches the
browser unchanged apart from its ``seq`` and ``session_id``.
"""
