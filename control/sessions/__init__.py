"""Everything about a session's life, behind one access check (see ``service``).

Parts: ``caller`` (who asks), ``service`` (the access check and views), ``launch``,
``turns``, ``lifecycle`` (stop, delete, janitor, reconcile) and ``machines``. The states a
session moves through are ``control.session_status``.
"""

from control.sessions.caller import Caller, Grant
from control.sessions.lifecycle import Janitor
from control.sessions.service import SessionService
from control.sessions.views import session_view

__all__ = ["Caller", "Grant", "Janitor", "SessionService", "session_view"]
