"""A full disk reads as a clear message in the user's language, never a traceback.

The disk is really filled: the command runs in a child process whose largest file is capped with
``RLIMIT_FSIZE`` (``SIGXFSZ`` ignored), so its writes fail with EFBIG, which gridwatch treats as ENOSPC.
"""

from __future__ import annotations

import errno
import json
import resource
import signal
import subprocess
import sys

import pytest
from conftest import copy_db, drop_db

from gridwatch.api.http import status_of
from gridwatch.errors import DiskFull, StorageError, is_disk_full
from gridwatch.i18n import translate_error


def _capped(size: int, *args: str) -> subprocess.CompletedProcess:
    def cap() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return subprocess.run([sys.executable, "-m", "gridwatch", *args], preexec_fn=cap, capture_output=True,
                          text=True, timeout=300)


def test_a_database_write_on_a_full_disk_says_so_in_chinese(tmp_path):
    done = _capped(3_000_000, "init", "--region", "410329", "--demo", "--db", str(tmp_path / "new.duckdb"))
    assert done.returncode == DiskFull.exit_code, done.stderr[-2000:]
    assert "磁盘已满" in done.stderr and "Traceback" not in done.stderr + done.stdout


def test_an_export_on_a_full_disk_says_so_and_changes_nothing_stored(demo_db, tmp_path):
    db = copy_db(demo_db, tmp_path, "full.duckdb")
    (tmp_path / "ranking.csv").write_text("an earlier export\n", encoding="utf-8")
    before = subprocess.run([sys.executable, "-m", "gridwatch", "audit", "verify", "--json", "--db", db],
                            capture_output=True, text=True, timeout=300)
    done = _capped(300, "report", "daily", "--date", "2026-06-20", "--csv", str(tmp_path / "ranking.csv"),
                   "--db", db, "--json", "--lang", "en")
    assert done.returncode == DiskFull.exit_code, done.stderr[-2000:]
    assert "The disk is full" in done.stderr and "Traceback" not in done.stderr + done.stdout
    assert '"kind": "DiskFull"' in done.stdout
    # the export is written whole or not at all: the earlier file is untouched and no partial file is left
    assert (tmp_path / "ranking.csv").read_text(encoding="utf-8") == "an earlier export\n"
    assert not list(tmp_path.glob("*.partial"))
    after = subprocess.run([sys.executable, "-m", "gridwatch", "audit", "verify", "--json", "--db", db],
                           capture_output=True, text=True, timeout=300)
    assert after.returncode == 0 and json.loads(after.stdout)["ok"]
    assert json.loads(after.stdout)["rows"] == json.loads(before.stdout)["rows"]  # nothing was stored
    drop_db(db)


@pytest.mark.parametrize("failure", [
    OSError(errno.ENOSPC, "No space left on device"),
    OSError(errno.EFBIG, "File too large"),
    StorageError("Database error: {detail}", detail='Could not write file "x": No space left on device'),
])
def test_every_way_a_full_disk_is_reported_is_recognised(failure):
    assert is_disk_full(failure)
    try:
        raise RuntimeError("while writing") from failure
    except RuntimeError as wrapped:
        assert is_disk_full(wrapped)


def test_the_api_answers_a_full_disk_with_507():
    assert status_of(DiskFull()) == (507, "disk_full")
    assert translate_error(DiskFull(), "zh_CN").startswith("磁盘已满")


def test_a_real_full_disk_from_a_write_is_recognised(tmp_path):
    """EFBIG raised by the system itself (in a child with a capped file size), not built by the test."""
    code = ("import resource, signal, errno\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (10, 10))\n"
            "from gridwatch.errors import is_disk_full\n"
            f"f = open({str(tmp_path / 'x.bin')!r}, 'wb', buffering=0)\n"
            "try:\n    f.write(b'x' * 100); f.write(b'x' * 100)\n"
            "except OSError as exc:\n    print(exc.errno == errno.EFBIG, is_disk_full(exc))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["True", "True"], done.stderr
