"""A local stand-in of the Anthropic Messages API that the real Claude Code CLI can use.

``StubAnthropic`` runs it in-process; ``python -m stubs.anthropic`` serves it standalone.
See ``grammar.py`` for the demo model and ``admin.py`` for the ``/_stub`` control routes.
"""

from .client import StubAnthropicClient
from .control import Matcher, StubControl
from .reply import Reply, Text, Thinking, ToolUse
from .runtime import StubAnthropic
from .server import create_app

__all__ = [
    "Matcher",
    "Reply",
    "StubAnthropic",
    "StubAnthropicClient",
    "StubControl",
    "Text",
    "Thinking",
    "ToolUse",
    "create_app",
]
