"""Extract every translatable message and merge it into the zh_CN catalog.

Run after changing user-facing text: ``python scripts/update_translations.py``.
New messages arrive untranslated; ``tests/test_i18n.py`` fails until each has a translation.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "gridwatch" / "locale" / "zh_CN" / "LC_MESSAGES" / "gridwatch.po"
#: functions whose first argument is a message: gettext-style calls and every error class
KEYWORDS = ("t", "gettext", "N_", "ValidationError", "NotFound", "CRSError", "StorageError", "OutsideRegion",
            "PermissionDenied", "InvalidTransition", "GridwatchError", "_unknown_crs", "FetchError", "Conflict")


def extract(pot: Path) -> None:
    """Write the message template of the source tree to ``pot``."""
    args = [sys.executable, "-m", "babel.messages.frontend", "extract", "-F", str(ROOT / "babel.cfg"),
            "--no-location", "--omit-header", "--sort-output", "-w", "1000", "-o", str(pot)]
    for keyword in KEYWORDS:
        args += ["-k", keyword]
    subprocess.run(args + [str(ROOT)], check=True, cwd=ROOT, capture_output=True)


def main() -> None:
    """Extract and merge; report messages still untranslated."""
    from babel.messages.pofile import read_po, write_po

    with tempfile.TemporaryDirectory() as tmp:
        pot = Path(tmp) / "gridwatch.pot"
        extract(pot)
        with pot.open("rb") as handle:
            template = read_po(handle)
    with CATALOG.open("rb") as handle:
        catalog = read_po(handle, locale="zh_CN")
    catalog.update(template, no_fuzzy_matching=True)
    with CATALOG.open("wb") as handle:
        write_po(handle, catalog, width=1000, omit_header=False, sort_output=True, ignore_obsolete=True,
                 no_location=True)
    missing = [m.id for m in catalog if m.id and not m.string]
    print(f"{len(catalog)} messages, {len(missing)} untranslated")
    for message in missing:
        print("  ", message)


if __name__ == "__main__":
    main()
