"""Single-use grants with which a browser fetches its HttpOnly session cookie from the app's own server.

A signed-in screen cannot set an HttpOnly cookie: it talks to its browser over a websocket, and a cookie written by
script is readable by script. So the screen asks for a grant (:meth:`CookieGrants.issue`), a random secret that
lives for seconds and is bound to the session; the browser posts it to the server, which takes it
(:meth:`CookieGrants.redeem`, once) and answers with ``Set-Cookie`` carrying the session token, ``HttpOnly``. The
browser's script sees the grant, never the token.

Grants are kept by the server process, keyed by their SHA-256, and never written to the database: the page that
asks for one and the request that takes it reach the same process (Streamlit serves a browser session from one
process; its uploads and media files are kept in the process too), so no session token ever rests on disk.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
import time
from collections.abc import Callable

from gridwatch import auth
from gridwatch.errors import PermissionDenied
from gridwatch.storage import Store

__all__ = ["GRANT_SECONDS", "CookieGrants"]

#: how long a grant may wait for the browser to post it
GRANT_SECONDS = 30.0
#: most grants waiting at once in one process (a flood of sign-ins cannot grow the table without bound)
MAX_WAITING = 10_000


def _digest(grant: str) -> str:
    return hashlib.sha256(grant.encode("utf-8")).hexdigest()


def _refused() -> PermissionDenied:
    return PermissionDenied("This sign-in link has expired or was used already; sign in again.")


class CookieGrants:
    """The grants waiting in one server process: SHA-256 of the grant → (session token, end).

    Parameters
    ----------
    seconds : float
        How long a grant may wait.
    limit : int
        Most grants waiting at once; a new one beyond it drops the oldest.
    clock : callable
        Monotonic seconds (tests pass their own).

    Examples
    --------
    >>> grants = CookieGrants()
    >>> len(grants)
    0
    """

    def __init__(self, *, seconds: float = GRANT_SECONDS, limit: int = MAX_WAITING,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._waiting: dict[str, tuple[str, float]] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def issue(self, store: Store, token: str) -> str:
        """A new grant for the live session of ``token`` (raises PermissionDenied when the session has ended)."""
        auth.session_user(store, token)
        grant = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            for key in [k for k, (_, end) in self._waiting.items() if end <= now]:
                del self._waiting[key]
            if len(self._waiting) >= self.limit:
                del self._waiting[next(iter(self._waiting))]  # the oldest: dicts keep their order
            self._waiting[_digest(grant)] = (token, now + self.seconds)
        return grant

    def redeem(self, store: Store, grant: str) -> tuple[str, int]:
        """Take ``grant`` (once): the session token it was issued for and the seconds the session may still last.

        Raises
        ------
        PermissionDenied
            The grant is unknown, expired or taken already, or its session has ended.
        """
        if not isinstance(grant, str) or not 20 <= len(grant) <= 100:
            raise _refused()
        with self._lock:
            found = self._waiting.pop(_digest(grant), None)
        if found is None or found[1] <= self._clock():
            raise _refused()
        token = found[0]
        auth.session_user(store, token)
        ends = store.scalar("SELECT expires_at FROM sessions WHERE token_hash = ?", [auth._token_hash(token)])
        left = (ends - dt.datetime.now(dt.UTC).replace(tzinfo=None)).total_seconds()
        return token, max(1, int(left))
