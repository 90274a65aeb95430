"""A local stand-in for the NASA FIRMS API that replays recorded answers from ``tests/data/firms/``.

It listens on 127.0.0.1 only (port chosen by the system) and routes by the
MAP_KEY segment of the path, so each test picks a behaviour by the key it
gives the client. Only the part before the first ``-`` counts, so a test can
add a unique secret (``good-5f1e…``) and check it never leaks:

==============  =====================================================================
key             answer of ``/api/area/csv/{key}/...``
==============  =====================================================================
``good``        200, a real MODIS NRT CSV (header + 20 rows)
``empty``       200, the header-only CSV FIRMS sends when there are no fires
``badkey``      400, ``Invalid MAP_KEY.`` (text/plain, as FIRMS answers)
``denied``      401 with an empty body
``limited``     429, ``Exceeding allowed transaction limit.``, ``Retry-After: 600``
``limited400``  400, the same body without Retry-After (the status FIRMS has been seen to use)
``html``        503 with an HTML error page, every time
``flaky``       503 with the HTML page ``flaky_failures`` times, then the good CSV
``html200``     200 with the HTML page (a maintenance page in front of the service)
``slow``        sleeps ``slow_s`` seconds, then the good CSV
``echo``        400, a plain-text refusal that repeats the requested path (and so the key)
anything else   400, ``Invalid MAP_KEY.``
==============  =====================================================================

``/mapserver/mapkey_status/?MAP_KEY=good`` (or ``good-…``) answers the recorded JSON; any other key gets
``Invalid MAP_KEY.`` with 400.

Recorded files and where they come from:

* ``area_modis_nrt_20rows.csv`` and ``area_header_only.csv``: the header and first 20 rows of
  ``shared/data/fires/modis_c61_nrt_global24h_2022-02-26_27_henan_bbox.csv`` (NASA FIRMS MODIS
  C6.1 NRT, public). That file is a FIRMS global 24 h download, whose columns are those of the
  area API's MODIS CSV without ``instrument``.
* ``invalid_map_key.txt``: FIRMS's wording, ``Invalid MAP_KEY.`` (HTTP 400, text/plain, as public
  client code and probe notes record it).
* ``transaction_limit.txt``: FIRMS's wording, ``Exceeding allowed transaction limit.`` as public
  client code matches it. The real service has been seen sending it with 400 (and 403) rather than
  429, so the stand-in serves it both ways; the ``Retry-After`` header on the 429 is an assumption
  used to test the "when to try again" message.
* ``service_unavailable_503.html``: a plausible Apache-style 503 page, not a recording of FIRMS.
* ``mapkey_status.json``: the documented fields of the key status answer with made-up counts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

DATA = Path(__file__).resolve().parent / "data" / "firms"
GOOD_CSV = DATA / "area_modis_nrt_20rows.csv"
EMPTY_CSV = DATA / "area_header_only.csv"
INVALID_KEY = DATA / "invalid_map_key.txt"
RATE_LIMIT = DATA / "transaction_limit.txt"
HTML_503 = DATA / "service_unavailable_503.html"
KEY_STATUS = DATA / "mapkey_status.json"

CSV = "text/csv"
TEXT = "text/plain;charset=UTF-8"
HTML = "text/html; charset=iso-8859-1"
JSON = "application/json"


class FirmsStandIn:
    """The stand-in server: start it, point a client at :attr:`base_url`, read :attr:`paths`.

    Parameters
    ----------
    flaky_failures : int
        How many 503 answers the ``flaky`` key gets before the good CSV.
    slow_s : float
        How long the ``slow`` key waits before answering.
    """

    def __init__(self, *, flaky_failures: int = 2, slow_s: float = 1.0) -> None:
        self.flaky_failures = flaky_failures
        self.slow_s = slow_s
        self.paths: list[str] = []
        self._hits: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle --

    def start(self) -> FirmsStandIn:
        """Listen on 127.0.0.1 on a free port and serve on a daemon thread."""
        handler = type("Handler", (_Handler,), {"standin": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False  # a sleeping "slow" answer must not hold up the teardown
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
                                        name="firms-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        assert self._server is not None, "the stand-in is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- what was asked --

    def record(self, path: str) -> int:
        """Remember a request path; returns how many requests that key has made so far."""
        key = _key_of(path)
        with self._lock:
            self.paths.append(path)
            self._hits[key] = self._hits.get(key, 0) + 1
            return self._hits[key]

    def hits(self, key: str) -> int:
        """Number of requests made with ``key``."""
        with self._lock:
            return self._hits.get(key, 0)

    def paths_for(self, key: str) -> list[str]:
        """Request paths made with ``key``, in order."""
        with self._lock:
            return [p for p in self.paths if _key_of(p) == key]


def _key_of(path: str) -> str:
    """The behaviour a request asks for: its MAP_KEY up to the first ``-`` (``good-0f3a…`` is ``good``)."""
    parts = urlsplit(path)
    segments = parts.path.strip("/").split("/")
    if segments[:3] == ["api", "area", "csv"] and len(segments) > 3:
        key = segments[3]
    else:
        key = parse_qs(parts.query).get("MAP_KEY", [""])[0]
    return key.partition("-")[0]


class _Handler(BaseHTTPRequestHandler):
    standin: FirmsStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        """Keep the test output quiet."""

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first (the "slow" key)
        self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        """Answer according to the key in the path."""
        count = self.standin.record(self.path)
        path = urlsplit(self.path).path
        key = _key_of(self.path)
        if path.rstrip("/") == "/mapserver/mapkey_status":
            if key == "good":
                self._send(200, KEY_STATUS.read_bytes(), JSON)
            else:
                self._send(400, INVALID_KEY.read_bytes(), TEXT)
            return
        if not path.startswith("/api/area/csv/"):
            self._send(404, HTML_503.read_bytes().replace(b"503 Service Unavailable", b"404 Not Found"), HTML)
            return
        if key == "good":
            self._send(200, GOOD_CSV.read_bytes(), CSV)
        elif key == "empty":
            self._send(200, EMPTY_CSV.read_bytes(), CSV)
        elif key == "denied":
            self._send(401, b"", TEXT)
        elif key == "limited":
            self._send(429, RATE_LIMIT.read_bytes(), TEXT, {"Retry-After": "600"})
        elif key == "limited400":
            self._send(400, RATE_LIMIT.read_bytes(), TEXT)
        elif key == "html":
            self._send(503, HTML_503.read_bytes(), HTML)
        elif key == "flaky":
            if count <= self.standin.flaky_failures:
                self._send(503, HTML_503.read_bytes(), HTML)
            else:
                self._send(200, GOOD_CSV.read_bytes(), CSV)
        elif key == "html200":
            self._send(200, HTML_503.read_bytes(), HTML)
        elif key == "slow":
            time.sleep(self.standin.slow_s)
            self._send(200, GOOD_CSV.read_bytes(), CSV)
        elif key == "echo":
            self._send(400, f"Invalid request {self.path} (check the area coordinates)".encode(), TEXT)
        else:
            self._send(400, INVALID_KEY.read_bytes(), TEXT)


@contextmanager
def serve(**options) -> Iterator[FirmsStandIn]:
    """Run a :class:`FirmsStandIn` for the duration of a ``with`` block."""
    standin = FirmsStandIn(**options).start()
    try:
        yield standin
    finally:
        standin.stop()
