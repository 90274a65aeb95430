"""A PostgreSQL server for the tests: the one ``GRIDWATCH_TEST_PG`` names, or a throw-away local cluster.

``GRIDWATCH_TEST_PG`` is a URL of a role that may create databases (``.ci/run`` sets it). Without it, when the
PostgreSQL server binaries and PostGIS are installed, :func:`server_url` initialises a private cluster in a
temporary folder on a free port (as the ``postgres`` user when the tests run as root, since PostgreSQL refuses
to run as root), and stops and deletes it when the test process ends. Every test database is created from a
template and dropped afterwards (:func:`create_database`, :func:`drop_database`).
"""

from __future__ import annotations

import atexit
import glob
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

__all__ = ["server_url", "why_unavailable", "create_database", "drop_database", "database_url"]

_state: dict[str, str | None] = {}


def _bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    for path in reversed(candidates):
        if (Path(path) / "initdb").is_file() and (Path(path) / "pg_ctl").is_file():
            return Path(path)
    found = shutil.which("pg_ctl")
    return Path(found).resolve().parent if found and (Path(found).resolve().parent / "initdb").is_file() else None


def _has_postgis(bindir: Path) -> bool:
    version = bindir.parent.name
    return any(Path(p).is_file() for p in (f"/usr/share/postgresql/{version}/extension/postgis.control",))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_local() -> str:
    """Initialise and start a private cluster; returns its superuser URL or raises RuntimeError with a reason."""
    bindir = _bindir()
    if bindir is None:
        raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl) are installed")
    if not _has_postgis(bindir):
        raise RuntimeError(f"PostGIS is not installed for PostgreSQL {bindir.parent.name}")
    prefix: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if not runuser:
            raise RuntimeError("running as root without runuser to start PostgreSQL as the postgres user")
        prefix = [runuser, "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="gridwatch-pg-"))
    data, pwfile = root / "data", root / "pw"
    password = secrets.token_hex(12)
    pwfile.write_text(password + "\n", encoding="utf-8")
    if prefix:
        shutil.chown(root, "postgres")
        shutil.chown(pwfile, "postgres")
    port = _free_port()
    run = dict(capture_output=True, text=True, timeout=120, cwd=root)
    result = subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "gridwatch", "-E", "UTF8",
                             "--locale=C.UTF-8", "--auth-local=trust", "--auth-host=scram-sha-256",
                             f"--pwfile={pwfile}"], **run)
    if result.returncode:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {result.stderr.strip()[-300:]}")
    options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} -c max_connections=300"
    if os.environ.get("GRIDWATCH_PG_DURABLE", "") != "1":  # tests need no durability; benchmarks ask for it
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    result = subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w",
                             "-o", options, "start"], **run)
    if result.returncode:
        log = (root / "log").read_text(errors="replace")[-300:] if (root / "log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"pg_ctl start failed: {result.stderr.strip()[-300:]} {log}")

    def stop() -> None:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)

    atexit.register(stop)
    url = f"postgresql://gridwatch:{password}@127.0.0.1:{port}/postgres"
    _admin(url, "CREATE EXTENSION IF NOT EXISTS postgis", database="template1")
    return url


def _admin(url: str, sql: str, *, database: str | None = None) -> None:
    import psycopg

    target = database_url(url, database) if database else url
    for attempt in range(5):
        try:
            with psycopg.connect(target, autocommit=True, connect_timeout=10) as conn:
                conn.execute(sql)
            return
        except psycopg.errors.ObjectInUse:
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))  # a closed pool's last connection may still be ending
            template = _template_of(sql)
            if template and attempt >= 2:  # a test that left a store open on the template: end its sessions
                with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
                    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                 " WHERE datname = %s AND pid <> pg_backend_pid()", [template])


def _template_of(sql: str) -> str | None:
    found = re.search(r'TEMPLATE "([^"]+)"', sql)
    return found.group(1) if found else None


def server_url() -> str | None:
    """The URL of a role that may create databases, or None (see :func:`why_unavailable`)."""
    if "url" not in _state:
        given = os.environ.get("GRIDWATCH_TEST_PG", "").strip()
        if given:
            _state["url"], _state["reason"] = given, None
        else:
            try:
                _state["url"], _state["reason"] = _start_local(), None
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                _state["url"] = None
                _state["reason"] = f"GRIDWATCH_TEST_PG is not set and no local PostgreSQL could be started: {exc}"
    return _state["url"]


def why_unavailable() -> str:
    """Why :func:`server_url` gave None."""
    server_url()
    return _state.get("reason") or ""


def database_url(url: str, name: str) -> str:
    """``url`` with its database replaced by ``name``."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def create_database(template: str | None = None, *, prefix: str = "gw_test") -> str:
    """Create a fresh database (a copy of ``template`` when given) and return its URL."""
    url = server_url()
    assert url, why_unavailable()
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    copy = f' TEMPLATE "{template}"' if template else ""
    _admin(url, f'CREATE DATABASE "{name}"{copy}')
    return database_url(url, name)


def drop_database(db_url: str) -> None:
    """Drop the database ``db_url`` names (closing its remaining connections)."""
    import psycopg

    url = server_url()
    name = urllib.parse.urlsplit(db_url).path.lstrip("/")
    try:
        _admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.errors.InsufficientPrivilege:
        # an autovacuum worker on it, which FORCE may not end for a role that is not a superuser (the CI's): end
        # the role's own sessions, then a plain DROP, which cancels autovacuum itself
        _admin(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + name.replace("'", "")
               + "' AND usename = current_user AND pid <> pg_backend_pid()")
        _admin(url, f'DROP DATABASE IF EXISTS "{name}"')


def database_name(db_url: str) -> str:
    """The database name of a URL."""
    return urllib.parse.urlsplit(str(db_url)).path.lstrip("/")
