"""Translations: gettext catalogs read with Babel; Simplified Chinese by default, English on request.

Messages in the code are English msgids; ``gridwatch/locale/<lang>/LC_MESSAGES/gridwatch.po``
holds their translations (``pybabel extract`` / ``update`` keep it current).
Errors translate their template and then fill it, so values are never translated.
Task titles are stored as a key of :data:`TASK_TITLES` and its values (:func:`task_title_columns`, when tasks are
opened) and translated where they are shown (:func:`task_title`, :func:`task_titles`).

Examples
--------
>>> gettext("Cells", "zh_CN")
'网格单元'
>>> gettext("Cells", "en")
'Cells'
"""

from __future__ import annotations

import functools
import json
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from babel.messages.pofile import read_po

from gridwatch.errors import GridwatchError

__all__ = ["LANGUAGES", "DEFAULT_LANGUAGE", "gettext", "translate_error", "translate_text", "catalog", "N_",
           "TASK_TITLES", "TaskTitles", "task_title", "task_titles", "task_title_columns"]

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
    N_("required_roles"),
    N_("role_gaps"),
    N_("cell_gaps"),
    N_("by_village"),
    N_("conflicts"),
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
    N_("heat_source_check"),
    N_("static_source_confirmed"),
    N_("field_burning"),
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


# -- task titles -----------------------------------------------------------------------------------------

#: the message of each task title key (``tasks.title_key``), filled with the task's values (``tasks.title_args``);
#: satellite, boiler, plant and place names are values, shown as they are in every language
TASK_TITLES: dict[str, str] = {
    "fire_check": N_("Satellite fire point check {time} {satellite} ×{points}"),
    "routine_patrol": N_("Routine patrol"),
    "bare_land_survey": N_("Bare land survey {area_m2} m² ({date})"),
    "bare_greening": N_("Bare land to be greened, first seen {first_seen}, {area_m2} m²"),
    "boiler_check": N_("Coal boiler check {name} {capacity_tph} t/h, {distance_km} km from {plant}"),
    "boiler_eliminate": N_("Coal boiler to eliminate {name} {capacity_tph} t/h ({limit_tph} t/h or less)"),
    "coal_sale_point": N_("Loose coal sale point check: {name}"),
    "coal_recheck": N_("Follow-up check of loose coal in a no-burn zone"),
    "heat_source_check": N_("Possible static heat source — please verify: fire on {days} days within {window} days"),
    "problem_recheck": N_("Follow-up check (回头看) of closed problem {problem}"),
}

_NEEDS_ESCAPE = r'["\\\x00-\x1f]'


def _texts(values: Any) -> pa.Array:
    """Values as Arrow strings, each as ``str`` writes it (as pandas does: ``12.0``, ``3``); missing ones empty."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array) and pa.types.is_string(values.type):
        return pc.fill_null(values, "")
    series = pd.Series(np.asarray(values, dtype=object))
    texts = series.astype(str).to_numpy(dtype=object)
    texts[series.isna().to_numpy()] = ""
    return pa.array(texts, type=pa.string())


def _json_strings(texts: pa.Array) -> pa.Array:
    """Each text as a JSON string literal (quoted and escaped)."""
    if len(texts) and pc.any(pc.match_substring_regex(texts, _NEEDS_ESCAPE)).as_py():
        return pa.array([json.dumps(t, ensure_ascii=False) for t in texts.to_pylist()], type=pa.string())
    return pc.binary_join_element_wise('"', texts, '"', "")


def _joined(parts: list[str | pa.Array], n: int) -> pa.Array:
    """Texts and columns of ``n`` texts joined element by element."""
    if not any(isinstance(part, pa.Array) for part in parts):
        return pa.array(["".join(parts)] * n, type=pa.string())  # type: ignore[arg-type]
    return pc.binary_join_element_wise(*parts, "")


@dataclass(frozen=True)
class TaskTitles:
    """The titles of tasks as they are stored: one key, and per task a rendered title and the values.

    ``key`` is a key of :data:`TASK_TITLES` for all of them; ``title`` the message rendered in the default language
    and ``args`` its values as a JSON object, one entry per task (Arrow strings).
    """

    key: str
    title: pa.Array
    args: pa.Array

    def take(self, indices: Any) -> TaskTitles:
        """The titles of the tasks at ``indices`` (an Arrow or numpy array of positions)."""
        return TaskTitles(self.key, self.title.take(indices), self.args.take(indices))


def task_title_columns(key: str, values: Mapping[str, Any] | None = None, *, n: int | None = None,
                       language: str = DEFAULT_LANGUAGE) -> TaskTitles:
    """The stored titles of tasks with the title ``key``, formed from the message's values (vectorised).

    One pass per value column, whatever the number of tasks: the title is the translated message's literal parts
    and the value columns joined element by element, the values a JSON object of their texts.

    Parameters
    ----------
    key : str
        A key of :data:`TASK_TITLES`.
    values : mapping of str to array_like, optional
        The message's values, one array per field, one entry per task (numbers are written as ``str`` writes them).
    n : int, optional
        The number of tasks, needed only when the message has no values.
    language : str
        The language of ``title`` (the default title older readers show).

    Returns
    -------
    TaskTitles
        ``key``, the title rendered in ``language`` and the values as a JSON object of texts, per task.

    Examples
    --------
    >>> made = task_title_columns("fire_check", {"time": ["06-10 10:50"], "satellite": ["Terra"], "points": [2]})
    >>> made.title.to_pylist(), made.args.to_pylist()
    (['卫星火点核查 06-10 10:50 Terra ×2'], ['{"time": "06-10 10:50", "satellite": "Terra", "points": "2"}'])
    >>> task_title_columns("routine_patrol", n=2, language="en").title.to_pylist()
    ['Routine patrol', 'Routine patrol']
    """
    if key not in TASK_TITLES:
        raise KeyError(f"no task title {key!r}; known: {', '.join(TASK_TITLES)}")
    texts = {name: _texts(column) for name, column in (values or {}).items()}
    sizes = {len(column) for column in texts.values()} | ({n} if n is not None else set())
    if len(sizes) > 1:
        raise ValueError(f"the values of task title {key!r} differ in length: {sorted(sizes)}")
    count = sizes.pop() if sizes else 0
    title: list[str | pa.Array] = []
    for literal, field, _spec, _conversion in string.Formatter().parse(gettext(TASK_TITLES[key], language)):
        title.append(literal)
        if field is not None:
            title.append(texts[field])
    args: list[str | pa.Array] = ["{"]
    for i, (name, column) in enumerate(texts.items()):
        args += [(", " if i else "") + json.dumps(name) + ": ", _json_strings(column)]
    args.append("}")
    return TaskTitles(key, _joined(title, count), _joined(args, count))


def _field(row: Any, name: str) -> Any:
    value = row.get(name) if isinstance(row, Mapping) else getattr(row, name, None)
    return None if value is None or (isinstance(value, float) and value != value) else value


def task_title(row: Any, language: str = DEFAULT_LANGUAGE) -> str:
    """A task's title in ``language``: its message (``title_key``) filled with its values (``title_args``).

    A task opened before title keys shows its stored ``title``; a task without any title its kind's name.
    ``row`` is a mapping or a row object (``itertuples``) with some of ``title_key``, ``title_args``, ``title`` and
    ``kind``.

    Examples
    --------
    >>> row = {"title_key": "fire_check", "title": "卫星火点核查 06-10 10:50 Terra ×2", "kind": "fire_check",
    ...        "title_args": '{"time": "06-10 10:50", "satellite": "Terra", "points": "2"}'}
    >>> task_title(row, "en"), task_title(row, "zh_CN")
    ('Satellite fire point check 06-10 10:50 Terra ×2', '卫星火点核查 06-10 10:50 Terra ×2')
    >>> task_title({"title": "", "kind": "manual"}, "en"), task_title({"title": "旧的标题", "kind": "manual"}, "en")
    ('manual', '旧的标题')
    """
    key = _field(row, "title_key")
    if key in TASK_TITLES:
        raw = _field(row, "title_args")
        try:
            values = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
            return gettext(TASK_TITLES[key], language).format(**values)
        except (ValueError, TypeError, KeyError, IndexError):
            pass  # values that do not fill the message: the stored title below
    title = _field(row, "title")
    if isinstance(title, str) and title.strip():
        return title
    kind = _field(row, "kind")
    return gettext(str(kind), language) if kind else ""


def task_titles(frame: pd.DataFrame, language: str = DEFAULT_LANGUAGE) -> pd.Series:
    """:func:`task_title` of every row of ``frame``, each distinct title worked out once (same index).

    Examples
    --------
    >>> frame = pd.DataFrame({"title_key": ["routine_patrol", ""], "title_args": ["{}", "{}"],
    ...                       "title": ["例行巡查", ""], "kind": ["routine_patrol", "manual"]})
    >>> task_titles(frame, "en").tolist()
    ['Routine patrol', 'manual']
    """
    columns = [c for c in ("title_key", "title_args", "title", "kind") if c in frame.columns]
    if frame.empty or not columns:
        return pd.Series([""] * len(frame), index=frame.index, dtype=object)
    codes, distinct = pd.MultiIndex.from_frame(frame[columns].astype(object).where(frame[columns].notna(), None)
                                               .fillna("").astype(str)).factorize()
    shown = np.asarray([task_title(dict(zip(columns, values, strict=True)), language) for values in distinct],
                       dtype=object)
    return pd.Series(shown[codes], index=frame.index, dtype=object)
