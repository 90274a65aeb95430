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
import re
import string
from importlib import resources

from babel.messages.pofile import read_po

from gridwatch.errors import GridwatchError

__all__ = ["LANGUAGES", "DEFAULT_LANGUAGE", "gettext", "translate_error", "translate_text", "catalog", "N_"]

LANGUAGES = {"zh_CN": "简体中文", "en": "English"}
DEFAULT_LANGUAGE = "zh_CN"


def N_(message: str) -> str:  # noqa: N802 - the gettext convention
    """Mark a string for extraction without translating it here."""
    return message


#: words the CLI and pages show as labels: levels, roles and result keys
LABELS = (
    N_("province"),
    N_("city"),
    N_("county"),
    N_("township"),
    N_("village"),
    N_("cell"),
    N_("inspector"),
    N_("grid_member"),
    N_("grid_leader"),
    N_("supervisor"),
    N_("unit_head"),
    N_("gis_staff"),
    N_("admin"),
    N_("region"),
    N_("region_name"),
    N_("resolution"),
    N_("cells"),
    N_("units"),
    N_("cell_area_km2"),
    N_("demo"),
    N_("grid"),
    N_("added"),
    N_("removed"),
    N_("moved"),
    N_("examples"),
    N_("townships"),
    N_("villages"),
    N_("people"),
    N_("lat"),
    N_("lng"),
    N_("owners"),
    N_("chain"),
    N_("gaps"),
    N_("code"),
    N_("name"),
    N_("level"),
    N_("unit_code"),
    N_("unit_name"),
    N_("role"),
    N_("role_label"),
    N_("person"),
    N_("person_key"),
    N_("phone"),
    N_("units_checked"),
    N_("cells_checked"),
    N_("units_without_grid_leader"),
    N_("cells_without_inspector"),
    N_("count"),
    N_("by_township"),
    N_("people_without_unit"),
    N_("file"),
    N_("crs"),
    N_("replaced"),
    N_("repaired"),
    N_("repaired_units"),
    N_("assignments"),
    N_("unchanged"),
    N_("static_source"),
    N_("persistent_heat"),
    N_("low_confidence"),
    N_("open"),
    N_("assigned"),
    N_("in_progress"),
    N_("reported"),
    N_("verified"),
    N_("closed"),
    N_("rejected"),
    N_("escalated"),
    N_("read"),
    N_("accepted"),
    N_("duplicates"),
    N_("outside_region"),
    N_("not_dispatched"),
    N_("incidents"),
    N_("tasks_created"),
    N_("coverage_gaps"),
    N_("passes"),
    N_("files"),
    N_("batch"),
    N_("fires"),
    N_("fire_check"),
    N_("bare_land_survey"),
    N_("boiler_check"),
    N_("coal_check"),
    N_("routine_patrol"),
    N_("manual"),
    N_("confirmed_burning"),
    N_("extinguished"),
    N_("false_alarm"),
    N_("industrial_heat_source"),
    N_("covered"),
    N_("greened"),
    N_("still_bare"),
    N_("operating"),
    N_("integrated"),
    N_("to_close"),
    N_("exempt"),
    N_("none_found"),
    N_("seized"),
    N_("normal"),
    N_("problem_found"),
    N_("done"),
    N_("due"),
    N_("clean"),
    N_("overdue"),
    N_("cells clean"),
    N_("cells active"),
    N_("active"),
    N_("cells overdue"),
    N_("heat"),
    N_("plants"),
    N_("chp_marked"),
    N_("boilers"),
    N_("boilers_listed"),
    N_("accounts"),
    N_("patrols"),
)


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


_FIELD = re.compile(r"\{(\w+)(![rsa])?(:[^{}]*)?\}")


@functools.cache
def _patterns(language: str) -> tuple[tuple[re.Pattern[str], str], ...]:
    """Each msgid with fields as a pattern capturing their rendered values, with its translation (fields plain)."""
    found = []
    for msgid, translation in catalog(language).items():
        if "{" not in msgid:
            continue
        regex, seen = "", set()
        try:
            for literal, field, _spec, _conversion in string.Formatter().parse(msgid):
                regex += re.escape(literal)
                if field is None:
                    continue
                if not field.isidentifier():
                    raise ValueError(field)
                regex += f"(?P={field})" if field in seen else f"(?P<{field}>.+?)"
                seen.add(field)
        except ValueError:
            continue
        found.append((re.compile(regex, re.DOTALL), _FIELD.sub(r"{\1}", translation)))
    # the most specific first: longer literal text wins over a shorter template that also matches
    found.sort(key=lambda item: -len(item[0].pattern))
    return tuple(found)


def translate_text(text: str, language: str = DEFAULT_LANGUAGE) -> str:
    """Translate an English message that was already filled in (a stored warning, say).

    A text equal to a msgid is looked up; otherwise the msgid templates are matched against it and the values
    they capture are put into the translation as they were rendered. Text that matches no message stays as is.

    Examples
    --------
    >>> translate_text("Skipped 3 empty lines.", "zh_CN") == gettext("Skipped {count} empty lines.").format(count=3)
    True
    >>> translate_text("no such message", "zh_CN")
    'no such message'
    """
    table = catalog(language)
    if text in table or not table:
        return table.get(text, text)
    for pattern, translation in _patterns(language):
        match = pattern.fullmatch(text)
        if match:
            try:
                return translation.format(**match.groupdict())
            except (KeyError, IndexError, ValueError):
                return text
    return text
