# Types for flask-sock 0.7, which ships none: only what control/blueprints/live.py uses.
# mypy reads this directory through `mypy_path` in pyproject.toml.
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec

from flask import Blueprint, Flask
from simple_websocket import Server

_P = ParamSpec("_P")

class Sock:
    def __init__(self, app: Flask | None = None) -> None: ...
    def init_app(self, app: Flask) -> None: ...
    # The view receives the connection first, then the URL's variables; the route answers
    # the upgrade itself, so what the view returns is discarded.
    def route(
        self, path: str, bp: Blueprint | None = None, **kwargs: Any
    ) -> Callable[[Callable[Concatenate[Server, _P], object]], Callable[_P, Any]]: ...
