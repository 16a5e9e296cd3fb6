"""Machine agent app factory."""

from __future__ import annotations

from flask import Flask

from machine_agent.agent_routes import agent_bp
from machine_agent.files import files_bp
from machine_agent.http import install_error_handlers, require_machine_token
from machine_agent.peers import require_control_plane
from machine_agent.runner import AgentRunner


def create_app(*, workspace: str, token: str, home: str, max_upload_mb: int = 50) -> Flask:
    app = Flask(__name__)
    app.config.update(MACHINE_TOKEN=token, WORKSPACE=workspace, MAX_UPLOAD_BYTES=max_upload_mb * 1024 * 1024)
    app.extensions["agent_runner"] = AgentRunner(workspace, home)
    app.before_request(require_control_plane)  # first: a stranger is refused before its token is read
    app.before_request(require_machine_token)
    install_error_handlers(app)
    app.register_blueprint(agent_bp)
    app.register_blueprint(files_bp, url_prefix="/files")
    return app
