"""The audit key and the anchored chain head: the two things of the tamper-evident record kept outside the database.

The key that MACs every link of the chain (:mod:`gridwatch.audit`) never lives in the database: it is a keyring
file (``<database>.auditkey`` beside a DuckDB file, mode 0600) or the environment variable ``GRIDWATCH_AUDIT_KEY``
(hex keys separated by commas, the first one current). A keyring keeps every key it ever had, each with an id, so
links MACed before a rotation still verify. The chain's head (sequence number and hash) is also written beside the
database, in ``<database>.audithead``, after every seal (temp file, fsync, rename), so a database whose chain is
shorter than its head file has lost links. A PostgreSQL database keeps both files in ``GRIDWATCH_AUDIT_DIR``
(default: the data folder), named after its server and database.

Examples
--------
>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = pathlib.Path(tmp) / "db.auditkey"
...     ring = create_keyring(path)
...     again = rotate_keyring(path)
...     len(again.keys), again.current != ring.current, oct(path.stat().st_mode & 0o777)
(2, True, '0o600')
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridwatch.errors import StorageError, ValidationError

__all__ = ["KEY_ENV", "DIR_ENV", "Keyring", "key_path", "head_path", "load_keyring", "create_keyring",
           "rotate_keyring", "read_head", "write_head", "write_private"]

#: the environment variable that may hold the audit keys (hex, comma-separated, the current one first)
KEY_ENV = "GRIDWATCH_AUDIT_KEY"
#: the folder of a PostgreSQL database's key and head files (default: the data folder)
DIR_ENV = "GRIDWATCH_AUDIT_DIR"
#: bytes of a new key
KEY_BYTES = 32


@dataclass(frozen=True)
class Keyring:
    """The audit keys by id, and the id of the one new links are MACed with; ``source`` says where they came from."""

    current: str
    keys: dict[str, bytes]
    source: str

    def to_json(self) -> str:
        """The keyring file's text."""
        return json.dumps({"current": self.current, "keys": {k: v.hex() for k, v in self.keys.items()}},
                          indent=2) + "\n"


def _pg_name(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    name = f"{parts.hostname or 'local'}-{parts.port or 5432}-{urllib.parse.unquote(parts.path.lstrip('/'))}"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _sidecar(store: Any, suffix: str) -> Path | None:
    if store.backend == "postgres":
        from gridwatch.config import DEFAULT_DB_PATH

        folder = Path(os.environ.get(DIR_ENV) or DEFAULT_DB_PATH.parent)
        return folder / (_pg_name(store.url) + suffix)
    path = getattr(store, "path", ":memory:")
    return None if path == ":memory:" else Path(str(path) + suffix)


def key_path(store: Any) -> Path | None:
    """Where the keyring file of ``store`` lives (None for an in-memory database)."""
    return _sidecar(store, ".auditkey")


def head_path(store: Any) -> Path | None:
    """Where the anchored head of ``store``'s chain lives (None for an in-memory database)."""
    return _sidecar(store, ".audithead")


def _key_id(key: bytes) -> str:
    return "e" + hashlib.sha256(key).hexdigest()[:8]


def load_keyring(path: Path | None, env: dict[str, str] | None = None) -> Keyring | None:
    """The keys: ``GRIDWATCH_AUDIT_KEY`` when set (plus those of the file, for old links), else the file's; None
    when there are none.

    Raises
    ------
    ValidationError
        The variable or the file holds something that is not a keyring.
    """
    env = os.environ if env is None else env
    keys: dict[str, bytes] = {}
    current = None
    source = ""
    if path is not None and path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            keys = {str(k): bytes.fromhex(v) for k, v in data["keys"].items()}
            current = str(data["current"])
            if current not in keys:
                raise KeyError(current)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValidationError("The audit key file {path} is damaged; put back its backup.",
                                  path=path.name) from exc
        source = str(path)
    text = env.get(KEY_ENV, "").strip()
    if text:
        try:
            given = [bytes.fromhex(part.strip()) for part in text.split(",") if part.strip()]
        except ValueError as exc:
            raise ValidationError("{variable} must hold hexadecimal keys separated by commas.",
                                  variable=KEY_ENV) from exc
        if not given or any(len(k) < 16 for k in given):
            raise ValidationError("{variable} must hold keys of at least 32 hexadecimal digits.", variable=KEY_ENV)
        for key in reversed(given):
            keys[_key_id(key)] = key
        current, source = _key_id(given[0]), KEY_ENV
    if current is None:
        return None
    return Keyring(current, keys, source)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (temp file, fsync, rename, fsync of the folder), mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def create_keyring(path: Path) -> Keyring:
    """A new keyring with one fresh key, written to ``path`` (which must not exist)."""
    if path.exists():
        raise ValidationError("The audit key file {path} exists already; it is never overwritten.", path=path.name)
    key_id = "k" + secrets.token_hex(4)
    ring = Keyring(key_id, {key_id: secrets.token_bytes(KEY_BYTES)}, str(path))
    write_private(path, ring.to_json())
    return ring


def rotate_keyring(path: Path) -> Keyring:
    """Add a fresh key to the keyring file ``path`` and make it current; the old keys stay (old links verify)."""
    ring = load_keyring(path, env={})
    if ring is None:
        raise StorageError("There is no audit key file {path} to rotate.", path=path.name)
    key_id = "k" + secrets.token_hex(4)
    rotated = Keyring(key_id, {**ring.keys, key_id: secrets.token_bytes(KEY_BYTES)}, str(path))
    write_private(path, rotated.to_json())
    return rotated


def read_head(path: Path | None) -> dict[str, Any] | None:
    """The anchored head ``{"seq", "hash"}`` in ``path``, or None when there is no such file.

    Raises
    ------
    ValidationError
        The file is not a head file.
    """
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {"seq": int(data["seq"]), "hash": str(data["hash"])}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValidationError("The audit head file {path} is damaged.", path=path.name) from exc


def write_head(path: Path, seq: int, hash_: str) -> None:
    """Anchor the chain head ``(seq, hash_)`` in ``path`` (atomically)."""
    write_private(path, json.dumps({"seq": int(seq), "hash": hash_}) + "\n")
