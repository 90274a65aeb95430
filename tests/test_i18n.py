"""Every user-facing message has a Simplified Chinese translation with the same placeholders."""

from __future__ import annotations

import importlib.util
import string
import sys
import tempfile
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from gridwatch.errors import ValidationError
from gridwatch.i18n import catalog, gettext, translate_error

ROOT = Path(__file__).resolve().parents[1]


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.fixture(scope="module")
def template():
    spec = importlib.util.spec_from_file_location("update_translations", ROOT / "scripts" / "update_translations.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["update_translations"] = module
    spec.loader.exec_module(module)
    with tempfile.TemporaryDirectory() as tmp:
        pot = Path(tmp) / "gridwatch.pot"
        module.extract(pot)
        with pot.open("rb") as handle:
            return [m.id for m in read_po(handle) if m.id]


def test_every_message_is_translated(template):
    zh = catalog("zh_CN")
    missing = [m for m in template if m not in zh]
    assert len(template) > 100
    assert not missing, "untranslated (run scripts/update_translations.py and translate):\n" + "\n".join(missing)


def test_translations_keep_the_placeholders(template):
    zh = catalog("zh_CN")
    wrong = [m for m in template if m in zh and _fields(m) != _fields(zh[m])]
    assert not wrong, wrong


def test_errors_render_in_the_users_language():
    err = ValidationError("{file} holds no features.", file="村界.geojson")
    assert translate_error(err, "en") == "村界.geojson holds no features."
    assert translate_error(err, "zh_CN") == "村界.geojson 中没有要素。"
    assert gettext("grid_leader") == "网格长"
    assert gettext("grid_leader", "en") == "grid_leader"
