"""Database sessions beside a replica (SESSION_ENGINE when DATABASE_REPLICA_URL is set).

Sessions are written to the primary, like every row. A page reads its session where it reads
the rest, so that a logged-in user's pages still answer while the primary is away; a session
the replica has not got yet (the one a login made a moment ago, when the replica lags) is read
from the primary instead of logging its user out.
"""

from __future__ import annotations

from django.contrib.sessions.backends import db
from django.db import DatabaseError

from config.replica import PRIMARY, reading_alias, reads_from


class SessionStore(db.SessionStore):
    def _get_session_from_db(self):
        session_key = self.session_key
        session = super()._get_session_from_db()
        if session is None and session_key and reading_alias() != PRIMARY:
            self._session_key = session_key  # the miss above forgot it
            try:
                with reads_from(PRIMARY):
                    session = super()._get_session_from_db()
            except DatabaseError:  # the primary is away: the user logs in again later
                return None
        return session
