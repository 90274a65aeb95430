"""Translations: gettext catalogs read with Babel; Simplified Chinese by default, English on request.

Messages in the code are English msgids; ``gridwatch/locale/<lang>/LC_MESSAGES/gridwatch.po``
holds their translations (``pybabel extract`` / ``update`` keep it current).
Errors translate their template and then fill it, so values are never translated.

Examples
--------
>>> gettext("Cells", "zh_CN")
'网格单元'
>>> gettext("Cells", "en")
'Cells'
"""

from __future__ import annotations

import functools
from importlib import resources

from babel.messages.pofile import read_po

from gridwatch.errors import GridwatchError

__all__ = ["LANGUAGES", "DEFAULT_LANGUAGE", "gettext", "translate_error", "catalog"]

LANGUAGES = {"zh_CN": "简体中文", "en": "English"}
DEFAULT_LANGUAGE = "zh_CN"


@functools.cache
def catalog(language: str) -> dict[str, str]:
    """The msgid → translation map of ``language`` (empty for English, the source language)."""
    if language == "en":
        return {}
    path = resources.files("gridwatch") / "locale" / language / "LC_MESSAGES" / "gridwatch.po"
    with path.open("rb") as handle:
        po = read_po(handle, locale=language)
    return {m.id: m.string for m in po if m.id and m.string and not m.fuzzy}


def gettext(message: str, language: str = DEFAULT_LANGUAGE) -> str:
    """Translate ``message`` into ``language``; untranslated messages stay English."""
    return catalog(language).get(message, message)


def translate_error(error: BaseException, language: str = DEFAULT_LANGUAGE) -> str:
    """The error's message in ``language``, values filled in."""
    if isinstance(error, GridwatchError):
        return error.render(gettext(error.template, language))
    return str(error)
