"""The alarm intake of the API: one writer thread storing the alarms that arrive together in one transaction.

DuckDB commits one small transaction in about a millisecond and a half, and every commit also seals the record
(:mod:`gridwatch.audit`); an alarm is several writes (the alarm, its task, the task's first event, the audit
entry). Twenty clients posting at once would queue on those commits one by one. So the routes hand each alarm to
:class:`AlarmWriter`, whose thread takes every alarm waiting when it is free — one or a few hundred — identifies
their integrations, admits them under each one's rate, and stores them with their tasks through
:func:`gridwatch.services.post_alarm_groups` in one transaction: the more arrive at once, the larger the batch, so the
commits stay few while each alarm waits at most about one batch.

Rates are fixed one-minute windows counted in this process (:class:`RateWindows`), under a lock, not in the
database: DuckDB has one server process, and the PostgreSQL deployment sends each client to one process (sticky
``ip_hash``), so an integration's calls meet one counter either way, while a counter in the database would add a
write, and for concurrent calls of one integration a write conflict, to every call.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from gridwatch import services
from gridwatch.api.http import status_of
from gridwatch.errors import GridwatchError, PermissionDenied, StorageError
from gridwatch.services import IntegrationActor
from gridwatch.storage import Store

__all__ = ["RateWindows", "AlarmWriter", "Posted"]

log = logging.getLogger(__name__)


class RateWindows:
    """Calls per integration in fixed one-minute windows, counted in this process.

    Examples
    --------
    >>> windows = RateWindows(clock=lambda: 600.0)
    >>> hotline = IntegrationActor(1, "hotline", "410329", "hotline", 3)
    >>> windows.admit(hotline, 2), windows.admit(hotline, 2), windows.admit(hotline, 1)
    (2, 1, 0)
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._window = -1
        self._used: dict[int, int] = {}

    def admit(self, actor: IntegrationActor, calls: int = 1) -> int:
        """How many of ``calls`` more calls the integration may make in this minute (they are counted)."""
        window = int(self._clock() // 60)
        with self._lock:
            if window != self._window:
                self._window, self._used = window, {}
            used = self._used.get(actor.id, 0)
            admitted = max(0, min(calls, actor.rate_per_minute - used))
            self._used[actor.id] = used + admitted
            return admitted

    def seconds_left(self) -> int:
        """Seconds until the next window opens (at least 1)."""
        return max(1, 60 - int(self._clock() % 60))


@dataclass(frozen=True)
class Posted:
    """What became of one alarm handed to the writer: ``created`` and the answer, or the refusal's status, code
    and error (``status`` 0 for a success)."""

    created: bool = False
    answer: dict[str, Any] | None = None
    status: int = 0
    code: str = ""
    error: GridwatchError | None = None
    retry_after: int | None = None


@dataclass
class _Item:
    token: str
    body: dict[str, Any]
    photos: list = field(default_factory=list)  # (name, Photo) checked, for a multipart post
    future: Future = field(default_factory=Future)


_STOP = object()


class AlarmWriter:
    """A thread storing the alarms that arrive together in one transaction.

    Parameters
    ----------
    store : callable
        Returns the process's store (the app's cached one).
    rates : RateWindows
        The integrations' call counts.
    max_batch : int
        At most this many alarms per transaction (1: one transaction per alarm, as they come).
    gather_s, gather_most_s : float
        After the first alarm of a batch, wait for more until none has come for ``gather_s`` seconds, at most
        ``gather_most_s`` in all.
    """

    def __init__(self, store: Callable[[], Store], rates: RateWindows, *, max_batch: int = 200,
                 gather_s: float = 0.002, gather_most_s: float = 0.010) -> None:
        self._store = store
        self._rates = rates
        self.max_batch = max(1, int(max_batch))
        self.gather_s = gather_s
        self.gather_most_s = gather_most_s
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0
        self.alarms = 0

    def start(self) -> AlarmWriter:
        """Start the thread (a no-op when it runs)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="api-alarm-writer", daemon=True)
                self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Store what is waiting, then end the thread."""
        with self._lock:
            thread = self._thread
            if thread is None:
                return
            self._queue.put(_STOP)
        thread.join(timeout)
        self._thread = None

    def submit(self, token: str, body: dict[str, Any], photos: Sequence[Any] = ()) -> Future:
        """Hand over one alarm (checked JSON fields, and its checked photos) sent with ``token``; the future gives
        its :class:`Posted`."""
        item = _Item(token, body, list(photos))
        if self._thread is None or not self._thread.is_alive():
            self.start()
        self._queue.put(item)
        return item.future

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            batch = [first]
            # alarms arrive in waves (each client sends its next one when answered): take the wave that is still
            # arriving too, until none has come for gather_s (or gather_most_s has passed)
            until = time.monotonic() + self.gather_most_s
            while len(batch) < self.max_batch and self.max_batch > 1:
                wait = min(self.gather_s, until - time.monotonic())
                try:
                    item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            try:
                answers = self._process(batch)
            except Exception:  # noqa: BLE001 - every waiting caller gets an answer, whatever happened
                log.exception("the alarm writer failed on a batch of %d", len(batch))
                answers = [Posted(status=500, code="server_error", error=_server_error())] * len(batch)
            for item, answer in zip(batch, answers, strict=True):
                item.future.set_result(answer)
            self.batches += 1
            self.alarms += len(batch)

    def _process(self, batch: Sequence[_Item]) -> list[Posted]:
        store = self._store()
        groups: dict[str, list[int]] = {}
        for i, item in enumerate(batch):
            groups.setdefault(item.token, []).append(i)
        answers: list[Posted | None] = [None] * len(batch)
        refusals: list[tuple[str, str, dict[str, Any]]] = []  # audit entries: actor, subject, detail
        admitted: list[tuple[IntegrationActor, list[int]]] = []
        for token, positions in groups.items():
            try:
                actor = services.integration_actor(store, services.API, token)
            except PermissionDenied as exc:
                name = exc.params.get("name")
                for i in positions:
                    answers[i] = Posted(status=401, code="unauthenticated", error=exc)
                    refusals.append((f"integration:{name}" if name else services.API.username,
                                     str(batch[i].body.get("external_id", "")),
                                     {"status": 401, "reason": "revoked token" if name else "unknown token"}))
                continue
            allowed = self._rates.admit(actor, len(positions))
            wait = self._rates.seconds_left()
            for i in positions[allowed:]:
                answers[i] = Posted(status=429, code="rate_limited", retry_after=wait, error=PermissionDenied(
                    "The integration {name} may make {rate} calls a minute; send again in {seconds} s.",
                    name=actor.name, rate=actor.rate_per_minute, seconds=wait))
                refusals.append((actor.username, str(batch[i].body.get("external_id", "")),
                                 {"status": 429, "reason": "rate"}))
            if allowed:
                admitted.append((actor, positions[:allowed]))

        def work() -> list[tuple[list[int], list[services.AlarmOutcome]]]:
            with store.transaction():
                for actor_name, subject, detail in refusals:
                    services.audit(store, actor=actor_name, action="api.alarms.post", subject=subject[:200],
                                   detail={"outcome": "refused", **detail})
                if not admitted:
                    return []
                found = services.post_alarm_groups(store, services.API, [
                    (actor, [batch[i].body for i in positions]) for actor, positions in admitted],
                    photos=[[batch[i].photos for i in positions] for _, positions in admitted])
                return [(positions, outcomes) for (_, positions), outcomes in zip(admitted, found, strict=True)]

        try:
            done = store.retrying(work)
        except StorageError as exc:
            log.warning("a batch of %d alarms was not stored: %s", len(batch), exc)
            return [a if a is not None and a.status != 0 else Posted(status=503, code="unavailable", error=exc,
                                                                     retry_after=1) for a in answers]
        for positions, outcomes in done:
            for i, outcome in zip(positions, outcomes, strict=True):
                if outcome.error is not None:
                    status, code = status_of(outcome.error)
                    answers[i] = Posted(status=status, code=code, error=outcome.error)
                else:
                    answers[i] = Posted(created=outcome.created, answer=outcome.answer)
        return [a if a is not None else Posted(status=500, code="server_error", error=_server_error())
                for a in answers]


def _server_error() -> GridwatchError:
    return GridwatchError("Something went wrong on the server and was logged; nothing was stored. Send the request "
                          "again, or tell an administrator.")
