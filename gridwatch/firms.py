"""NASA FIRMS area API client: fetch fire points as CSV, classify the answer, schedule fetches.

The FIRMS "area" API answers
``GET {base_url}/api/area/csv/{MAP_KEY}/{SOURCE}/{west},{south},{east},{north}/{DAY_RANGE}[/{YYYY-MM-DD}]``
with a CSV of detections. Without a date it covers the most recent
``DAY_RANGE`` days (today and the days before); with a date it covers that
day and the ``DAY_RANGE - 1`` days after it. ``DAY_RANGE`` is 1 to 5
(:data:`MAX_DAY_RANGE`); :meth:`FirmsClient.fetch_days` splits longer spans.

:meth:`FirmsClient.fetch_area` never raises for a remote failure: it returns
a :class:`FetchResult` whose ``status`` says what happened (see
:data:`STATUSES`). Bad arguments (an unknown source, a day range outside
1..5, a malformed key) raise :class:`~gridwatch.errors.ValidationError`.

The MAP_KEY is a secret: it never appears in a returned URL, message, error
or log line (it is replaced by ``***``).

:class:`FetchScheduler` runs a fetch function on a daemon thread at a fixed
interval; it knows nothing of any UI framework.

Examples
--------
>>> region_bbox((110.36, 31.38, 116.65, 36.37), margin_deg=0.1)
(110.26, 31.28, 116.75, 36.47)
>>> day_windows(12, date(2024, 3, 12))
[(datetime.date(2024, 3, 1), 5), (datetime.date(2024, 3, 6), 5), (datetime.date(2024, 3, 11), 2)]
"""

from __future__ import annotations

import email.utils
import html
import http.client
import json
import logging
import math
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from gridwatch.errors import GridwatchError, ValidationError
from gridwatch.webio import Answer, Verdict, clip

__all__ = [
    "DEFAULT_BASE_URL",
    "SOURCES",
    "STATUSES",
    "MAX_DAY_RANGE",
    "FetchError",
    "FetchResult",
    "FirmsClient",
    "FetchScheduler",
    "day_windows",
    "region_bbox",
]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://firms.modaps.eosdis.nasa.gov"
#: products the area API serves (``_NRT`` near real time, ``_SP`` standard processing)
SOURCES = (
    "MODIS_NRT",
    "MODIS_SP",
    "VIIRS_SNPP_NRT",
    "VIIRS_SNPP_SP",
    "VIIRS_NOAA20_NRT",
    "VIIRS_NOAA20_SP",
    "VIIRS_NOAA21_NRT",
    "LANDSAT_NRT",
)
#: what a fetch can end in: ``ok`` (rows), ``empty`` (a header-only CSV, zero fires: not an error),
#: ``bad_key``, ``rate_limited``, ``error`` (a refusal or failure of the service), ``timeout``
STATUSES = ("ok", "empty", "bad_key", "rate_limited", "error", "timeout")
#: the largest DAY_RANGE one area request may ask for (FIRMS lowered it from 10 to 5 in 2024)
MAX_DAY_RANGE = 5
#: FIRMS counts a MAP_KEY's transactions over windows of this many minutes (5,000 per window in 2024)
TRANSACTION_WINDOW_MIN = 10
REDACTED = "***"

_KEY_RE = re.compile(r"^[A-Za-z0-9._~-]+$")
_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_TAG_RE = re.compile(r"<[^>]+>")
#: bytes of a non-CSV body looked at to classify it and quoted in a message
_SNIFF_BYTES = 4096


class FetchError(GridwatchError, ConnectionError):
    """The FIRMS service could not answer a request that has no status result (e.g. the key status).

    Its ``params`` hold ``status`` (one of :data:`STATUSES`) and a redacted ``detail``.
    """


@dataclass(frozen=True)
class FetchResult:
    """The outcome of one area request (after its retries).

    Attributes
    ----------
    source : str
        The FIRMS product asked for, e.g. ``VIIRS_SNPP_NRT``.
    url_redacted : str
        The request URL with the MAP_KEY replaced by ``***``.
    status : str
        One of :data:`STATUSES`.
    csv_bytes : bytes
        The CSV body when ``status`` is ``ok`` or ``empty``; ``b""`` otherwise.
    rows : int
        Number of data lines of the CSV (0 unless ``ok``).
    message : str
        What happened, in English, without the MAP_KEY.
    http_status : int or None
        HTTP status of the last answer; None when no answer came (timeout, refused connection).
    started_at, finished_at : datetime
        UTC, around all attempts.
    elapsed_s : float
        Seconds spent, retries and back-off included.
    days : int
        The DAY_RANGE asked for.
    start : date or None
        The first day asked for; None for "the most recent ``days`` days".
    attempts : int
        Requests made (1 plus the retries used).
    """

    source: str
    url_redacted: str
    status: str
    csv_bytes: bytes = field(repr=False)
    rows: int
    message: str
    http_status: int | None
    started_at: datetime
    finished_at: datetime
    elapsed_s: float
    days: int = 1
    start: date | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        """True when the service answered with a CSV (``ok`` or ``empty``)."""
        return self.status in ("ok", "empty")


# -- helpers -------------------------------------------------------------------------------------


def _fmt_coord(value: float) -> str:
    """A coordinate as FIRMS wants it: plain decimal, at most 6 places, no trailing zeros.

    >>> _fmt_coord(110.25), _fmt_coord(-0.0), _fmt_coord(36)
    ('110.25', '0', '36')
    """
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _check_bbox(bbox: Sequence[float]) -> tuple[float, float, float, float]:
    try:
        west, south, east, north = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise ValidationError("A bounding box is four numbers (west, south, east, north), got {bbox!r}.",
                              bbox=bbox) from None
    if not all(math.isfinite(v) for v in (west, south, east, north)) or not (
            -180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise ValidationError(
            "The bounding box {bbox!r} is not west < east within -180..180 and south < north within -90..90.",
            bbox=(west, south, east, north))
    return west, south, east, north


def _check_days(days: Any, *, most: int | None = MAX_DAY_RANGE) -> int:
    if isinstance(days, bool) or not isinstance(days, int) or days < 1 or (most is not None and days > most):
        raise ValidationError("A FIRMS day range is a whole number from 1 to {most}, got {days!r}; "
                              "split longer spans with fetch_days.", days=days, most=most)
    return days


def _check_source(source: Any) -> str:
    if source not in SOURCES:
        raise ValidationError("Unknown FIRMS source {source!r}; valid sources: {valid}.", source=source,
                              valid=", ".join(SOURCES))
    return source


def _as_date(value: Any, what: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raise ValidationError("The {what} must be a date, got {value!r}.", what=what, value=value)


def day_windows(days: int, end: date) -> list[tuple[date, int]]:
    """Split the ``days`` days that end on ``end`` (inclusive) into FIRMS windows, oldest first.

    Parameters
    ----------
    days : int
        Number of days, 1 or more.
    end : date
        The last day covered.

    Returns
    -------
    list of (date, int)
        ``(start, day_range)`` pairs with ``day_range`` at most :data:`MAX_DAY_RANGE`; every
        window but the last is full.

    Examples
    --------
    >>> day_windows(3, date(2024, 1, 2))
    [(datetime.date(2023, 12, 31), 3)]
    """
    days = _check_days(days, most=None)
    end = _as_date(end, "end day")
    first = end - timedelta(days=days - 1)
    windows = []
    for offset in range(0, days, MAX_DAY_RANGE):
        windows.append((first + timedelta(days=offset), min(MAX_DAY_RANGE, days - offset)))
    return windows


def region_bbox(bounds: Sequence[float], *, margin_deg: float = 0.1) -> tuple[float, float, float, float]:
    """Widen a (west, south, east, north) box by ``margin_deg`` and round it outward to 3 decimals.

    The result is clamped to -180..180 and -90..90, and always contains the input box.

    Parameters
    ----------
    bounds : sequence of 4 floats
        ``(west, south, east, north)`` in degrees, e.g. a shapely geometry's ``bounds``.
    margin_deg : float
        Degrees added on every side (0 or more).

    Returns
    -------
    tuple of 4 floats

    Examples
    --------
    >>> region_bbox((112.0001, 34.5, 112.5, 34.9999), margin_deg=0)
    (112.0, 34.5, 112.5, 35.0)
    """
    west, south, east, north = _check_bbox(bounds)
    if not (isinstance(margin_deg, int | float) and math.isfinite(margin_deg) and margin_deg >= 0):
        raise ValidationError("The bounding box margin must be 0 or more degrees, got {margin!r}.",
                              margin=margin_deg)
    # a tiny tolerance keeps 113.1 (stored as 113.09999...) at 113.1 instead of rounding it away
    down = lambda v: math.floor(round(v * 1000, 6)) / 1000  # noqa: E731
    up = lambda v: math.ceil(round(v * 1000, 6)) / 1000  # noqa: E731
    return (max(-180.0, down(west - margin_deg)), max(-90.0, down(south - margin_deg)),
            min(180.0, up(east + margin_deg)), min(90.0, up(north + margin_deg)))


def _sniff_text(body: bytes) -> str:
    return body[:_SNIFF_BYTES].decode("utf-8", errors="replace")


def _first_line(text: str) -> str:
    stripped = text.lstrip("\ufeff").strip()
    return stripped.splitlines()[0].strip() if stripped else ""


def _is_csv_header(line: str) -> bool:
    lowered = line.lower()
    return lowered.startswith("latitude,") or ("acq_date" in lowered and "," in lowered)


def _is_html(text: str) -> bool:
    head = text.lstrip("\ufeff \t\r\n").lower()
    return head.startswith("<!doctype") or head.startswith("<html")


def _html_title(text: str) -> str:
    match = _TITLE_RE.search(text)
    title = html.unescape(_TAG_RE.sub("", match.group(1))) if match else ""
    title = " ".join(title.split())
    return clip(title) if title else "no title"


def _count_rows(body: bytes) -> int:
    lines = [line for line in body.splitlines() if line.strip()]
    return max(0, len(lines) - 1)


def _retry_hint(retry_after: str | None) -> str:
    """When to try again, from a ``Retry-After`` header (seconds or an HTTP date)."""
    if retry_after:
        value = retry_after.strip()
        if value.isdigit():
            return f"try again in {int(value)} s"
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return f"try again after {when.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    return f"try again later (FIRMS counts a key's transactions per {TRANSACTION_WINDOW_MIN}-minute window)"


def _classify(answer: Answer) -> Verdict:
    """Map one HTTP answer (or transport failure) to a status, a message and whether to retry."""
    if answer.failure == "timeout":
        return Verdict("timeout", f"no answer within the time limit ({answer.detail})", retry=True)
    if answer.failure is not None:
        return Verdict("error", f"could not reach the service ({answer.detail})", retry=True)
    code = answer.http_status
    text = _sniff_text(answer.body)
    first = _first_line(text)
    lowered = text.lower()
    where = f"HTTP {code}"
    if _is_html(text):
        page = f"the service answered with an HTML page ({_html_title(text)}); {where}"
        if code == 429:  # a rate-limit page in front of the service: still a rate limit, not to be retried
            return Verdict("rate_limited", f"{page}; {_retry_hint(answer.retry_after)}")
        return Verdict("error", page, retry=code is not None and code >= 500)
    if code == 200 and _is_csv_header(first):
        rows = _count_rows(answer.body)
        if rows:
            return Verdict("ok", f"{rows} fire point(s)", rows=rows)
        return Verdict("empty", "a CSV with no fire points in this box and window")
    if "transaction limit" in lowered or code == 429:
        said = f": {clip(first)}" if first else ""
        return Verdict("rate_limited",
                        f"the MAP_KEY's transaction limit is used up ({where}{said}); "
                        f"{_retry_hint(answer.retry_after)}")
    if first.lower().startswith("invalid map_key") or code in (401, 403):
        said = f": {clip(first)}" if first else ""
        return Verdict("bad_key", f"FIRMS refused the MAP_KEY ({where}{said})")
    if code is not None and code >= 500:
        said = f": {clip(first)}" if first else ""
        return Verdict("error", f"the service failed ({where}{said})", retry=True)
    said = f": {clip(first)}" if first else " with an empty body"
    return Verdict("error", f"unexpected answer ({where}{said})")


# -- the client ----------------------------------------------------------------------------------


class FirmsClient:
    """Client of the FIRMS area API for one MAP_KEY.

    Parameters
    ----------
    map_key : str
        The FIRMS MAP_KEY (a secret: never logged or returned).
    base_url : str
        Scheme and host of the service, :data:`DEFAULT_BASE_URL` by default.
    timeout_s : float
        Socket timeout of each request, seconds.
    retries : int
        Extra attempts after an HTTP 5xx, a timeout or a failed connection (not after a bad key
        or a rate limit).
    backoff_s : float
        Pause before the first retry; it doubles for each further retry.
    opener : object, optional
        Something with ``open(request, timeout=...)`` like :class:`urllib.request.OpenerDirector`
        (the default is :func:`urllib.request.build_opener`, which honours proxy variables).

    Raises
    ------
    ValidationError
        A missing or malformed key, a base URL that is not http(s), or negative settings.
    """

    def __init__(self, map_key: str, *, base_url: str = DEFAULT_BASE_URL, timeout_s: float = 30,
                 retries: int = 2, backoff_s: float = 2.0, opener: Any = None) -> None:
        if not isinstance(map_key, str) or not _KEY_RE.match(map_key):
            # the key is a secret: the message never shows it
            raise ValidationError("The FIRMS MAP_KEY is missing or malformed (expected letters and digits).")
        if not isinstance(base_url, str) or not re.match(r"^https?://[^/\s]+", base_url):
            raise ValidationError("The FIRMS base URL must start with http:// or https://, got {url!r}.",
                                  url=base_url)
        if not (timeout_s > 0 and retries >= 0 and backoff_s >= 0):
            raise ValidationError(
                "FIRMS client settings out of range: timeout {timeout} s (> 0), retries {retries} (>= 0), "
                "back-off {backoff} s (>= 0).", timeout=timeout_s, retries=retries, backoff=backoff_s)
        self._key = map_key
        self.base_url = base_url.rstrip("/")
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self._opener = opener if opener is not None else urllib.request.build_opener()

    def __repr__(self) -> str:
        return f"FirmsClient(map_key={REDACTED!r}, base_url={self.base_url!r})"

    # -- URLs and redaction --

    def _redact_bytes(self, body: bytes) -> bytes:
        """The body with the MAP_KEY removed before any of it is quoted or shortened."""
        return body.replace(self._key.encode(), REDACTED.encode()) if self._key else body

    def redact(self, text: str) -> str:
        """``text`` with every occurrence of the MAP_KEY replaced by ``***``."""
        return text.replace(self._key, REDACTED)

    def area_url(self, source: str, bbox: Sequence[float], *, days: int, start: date | None = None,
                 redacted: bool = True) -> str:
        """The area request URL (redacted unless ``redacted=False``), checking the arguments.

        Raises
        ------
        ValidationError
            An unknown source, a bad box, a day range outside 1..5 or a start that is not a date.
        """
        source = _check_source(source)
        west, south, east, north = _check_bbox(bbox)
        days = _check_days(days)
        area = ",".join(_fmt_coord(v) for v in (west, south, east, north))
        key = REDACTED if redacted else self._key
        url = f"{self.base_url}/api/area/csv/{key}/{source}/{area}/{days}"
        if start is not None:
            url += "/" + _as_date(start, "start day").isoformat()
        return url

    # -- requests --

    def _request(self, url: str) -> Answer:
        """One GET; HTTP errors are answers, transport failures are recorded, nothing raises."""
        request = urllib.request.Request(url, headers={"User-Agent": "gridwatch-firms/1",
                                                       "Accept": "text/csv, text/plain, */*"})
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                body = response.read()
                return Answer(response.status, self._redact_bytes(body), response.headers.get("Retry-After"))
        except urllib.error.HTTPError as err:
            try:
                body = err.read()
            except (OSError, http.client.HTTPException):
                body = b""
            finally:
                err.close()
            return Answer(err.code, self._redact_bytes(body), err.headers.get("Retry-After") if err.headers else None)
        except urllib.error.URLError as err:
            if isinstance(err.reason, TimeoutError):
                return Answer(None, failure="timeout", detail=f"{self.timeout_s:g} s")
            return Answer(None, failure="error", detail=clip(self.redact(str(err.reason))))
        except TimeoutError:
            return Answer(None, failure="timeout", detail=f"{self.timeout_s:g} s")
        except (OSError, http.client.HTTPException, ValueError) as err:
            return Answer(None, failure="error", detail=clip(self.redact(f"{type(err).__name__}: {err}")))

    def _exchange(self, url: str) -> tuple[Answer, Verdict, int]:
        """Request ``url`` with retries; the last answer, its verdict and the number of attempts."""
        attempt = 0
        while True:
            attempt += 1
            answer = self._request(url)
            verdict = _classify(answer)
            if not verdict.retry or attempt > self.retries:
                return answer, verdict, attempt
            pause = self.backoff_s * 2 ** (attempt - 1)
            log.info("FIRMS %s: %s; retry %d of %d in %.1f s", self.redact(url), self.redact(verdict.message),
                     attempt, self.retries, pause)
            time.sleep(pause)

    def fetch_area(self, source: str, bbox: Sequence[float], *, days: int,
                   start: date | None = None) -> FetchResult:
        """Fetch the fire points of ``source`` in ``bbox`` over ``days`` days.

        Parameters
        ----------
        source : str
            One of :data:`SOURCES`.
        bbox : sequence of 4 floats
            ``(west, south, east, north)`` in degrees (WGS84).
        days : int
            DAY_RANGE, 1 to :data:`MAX_DAY_RANGE`.
        start : date, optional
            First day; without it FIRMS answers the most recent ``days`` days.

        Returns
        -------
        FetchResult
            Its ``status`` tells success (``ok``, ``empty``) from a remote failure; nothing is raised
            for those.

        Raises
        ------
        ValidationError
            Bad arguments (see :meth:`area_url`).
        """
        url_redacted = self.area_url(source, bbox, days=days, start=start)
        url = self.area_url(source, bbox, days=days, start=start, redacted=False)
        started_at = datetime.now(UTC)
        clock = time.monotonic()
        answer, verdict, attempts = self._exchange(url)
        elapsed = time.monotonic() - clock
        message = self.redact(verdict.message)
        if attempts > 1:
            message += f" after {attempts} attempts"
        log.log(logging.INFO if verdict.status in ("ok", "empty") else logging.WARNING,
                "FIRMS %s -> %s: %s", url_redacted, verdict.status, message)
        return FetchResult(
            source=source, url_redacted=url_redacted, status=verdict.status,
            csv_bytes=answer.body if verdict.status in ("ok", "empty") else b"", rows=verdict.rows,
            message=message, http_status=answer.http_status, started_at=started_at,
            finished_at=datetime.now(UTC), elapsed_s=elapsed, days=days,
            start=_as_date(start, "start day") if start is not None else None, attempts=attempts)

    def fetch_days(self, source: str, bbox: Sequence[float], days: int, end: date) -> list[FetchResult]:
        """Fetch the ``days`` days ending on ``end`` (inclusive) in windows of at most 5 days, oldest first.

        A ``bad_key`` or ``rate_limited`` result stops the run (the next windows would fail the same
        way and spend quota), so the list is then shorter than :func:`day_windows` — compare the two
        to see which windows are missing.

        Raises
        ------
        ValidationError
            Bad arguments, checked before any request.
        """
        windows = day_windows(days, end)
        self.area_url(source, bbox, days=windows[0][1], start=windows[0][0])  # check before any request
        results = []
        for start, span in windows:
            result = self.fetch_area(source, bbox, days=span, start=start)
            results.append(result)
            if result.status in ("bad_key", "rate_limited"):
                break
        return results

    def key_status(self) -> dict:
        """The MAP_KEY's usage as FIRMS reports it (``{base_url}/mapserver/mapkey_status/``).

        Returns
        -------
        dict
            The service's JSON, e.g. ``{"transaction_limit": 5000, "current_transactions": 12,
            "transaction_interval": "10 minutes"}``.

        Raises
        ------
        FetchError
            The service refused the key, is rate limited, failed or did not answer; ``params["status"]``
            is one of :data:`STATUSES`.
        """
        url = f"{self.base_url}/mapserver/mapkey_status/?MAP_KEY={self._key}"
        answer, verdict, _ = self._exchange(url)
        if answer.failure is None and answer.http_status == 200 and not _is_html(_sniff_text(answer.body)):
            try:
                data = json.loads(answer.body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                data = None
            if isinstance(data, dict):
                return {k: (self.redact(v) if isinstance(v, str) else v) for k, v in data.items()}
        if verdict.status in ("ok", "empty") or (verdict.status == "error" and answer.http_status == 200):
            status, detail = "error", f"the answer is not a JSON object (HTTP {answer.http_status})"
        else:
            status, detail = verdict.status, self.redact(verdict.message)
        raise FetchError("The FIRMS key status request failed ({status}): {detail}.", status=status, detail=detail)


# -- the scheduler -------------------------------------------------------------------------------


class FetchScheduler:
    """Call ``run_once`` on a daemon thread every ``interval_s`` seconds, the first time at once.

    An exception from ``run_once`` is logged and recorded (:attr:`last_error`), never fatal.
    Runs are spaced from their starts; a run longer than the interval is followed at once by the next.

    Parameters
    ----------
    run_once : callable
        Called without arguments; its return value is kept in :attr:`last_result`.
    interval_s : float
        Seconds between the starts of two runs (> 0).
    name : str
        Name of the thread (and of the scheduler in logs).
    """

    def __init__(self, run_once: Callable[[], Any], *, interval_s: float, name: str) -> None:
        if not callable(run_once):
            raise ValidationError("The scheduled job {name} is not callable.", name=name)
        if not (isinstance(interval_s, int | float) and math.isfinite(interval_s) and interval_s > 0):
            raise ValidationError("The interval of {name} must be a positive number of seconds, got {interval!r}.",
                                  name=name, interval=interval_s)
        self.run_once = run_once
        self.interval_s = float(interval_s)
        self.name = name
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0
        self.failures = 0
        self.last_run: datetime | None = None
        self.last_ok: datetime | None = None
        self.last_error: BaseException | None = None
        self.last_error_at: datetime | None = None
        self.last_result: Any = None
        self._next_run: datetime | None = None

    def __repr__(self) -> str:
        return f"FetchScheduler(name={self.name!r}, interval_s={self.interval_s:g}, running={self.is_running})"

    @property
    def is_running(self) -> bool:
        """True while the thread is alive and not asked to stop."""
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._stop.is_set()

    @property
    def next_run(self) -> datetime | None:
        """UTC time of the next run (None when stopped, or while a run is going on)."""
        return self._next_run if self.is_running else None

    def start(self) -> FetchScheduler:
        """Start the thread (a no-op when it is already running); returns the scheduler."""
        with self._lock:
            if self.is_running:
                return self
            if self._thread is not None and self._thread.is_alive():
                # stop() was asked but the last run has not finished yet: let it end first
                self._thread.join()
            self._stop = threading.Event()
            self._wake.clear()
            self._thread = threading.Thread(target=self._loop, args=(self._stop,), name=self.name, daemon=True)
            self._thread.start()
            return self

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Ask the thread to stop and wait up to ``timeout`` seconds for it (a run in progress finishes).

        Returns
        -------
        bool
            True when the thread has ended.
        """
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return thread is None
        thread.join(timeout)
        self._next_run = None
        return not thread.is_alive()

    def trigger(self) -> None:
        """Run as soon as possible instead of waiting for the rest of the interval."""
        self._wake.set()

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            began = time.monotonic()
            self._next_run = None
            self.last_run = datetime.now(UTC)
            try:
                result = self.run_once()
            except Exception as err:  # noqa: BLE001 - the scheduler records and survives every failure
                self.failures += 1
                self.last_error = err
                self.last_error_at = datetime.now(UTC)
                log.exception("scheduled job %s failed", self.name)
            else:
                self.last_result = result
                self.last_ok = datetime.now(UTC)
            finally:
                self.runs += 1
            wait = max(0.0, self.interval_s - (time.monotonic() - began))
            self._next_run = datetime.now(UTC) + timedelta(seconds=wait)
            self._wake.wait(wait)
            self._wake.clear()
