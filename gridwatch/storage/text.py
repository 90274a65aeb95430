"""Text the store refuses before it reaches either backend: NUL and the other C0 control characters.

PostgreSQL cannot hold U+0000 in text and answers with a raw error; DuckDB stores it, and then the same data could
not move to PostgreSQL. The other C0 controls (except tab, line feed and carriage return) are never typed by a
person and only hide text from whoever reads it later. Every statement's parameters and every bulk insert's text
columns pass :func:`check_params` / :func:`check_arrow` in both backends, so the refusal is one, made before
anything is written, and names the column when the statement shows it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gridwatch.errors import ValidationError

__all__ = ["check_params", "check_rows", "check_arrow", "CONTROL"]

#: the characters refused: C0 controls other than tab (09), line feed (0A) and carriage return (0D)
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
_CONTROL_RE2 = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"


def _refusal(field: str | None, char: str) -> ValidationError:
    code = f"U+{ord(char):04X}"
    if field:
        return ValidationError("The text for {field} holds a control character ({code}) that cannot be stored; "
                               "remove it (tabs and line breaks are fine).", field=field, code=code)
    return ValidationError("A text holds a control character ({code}) that cannot be stored; remove it (tabs and "
                           "line breaks are fine).", code=code)


def _placeholders(sql: str) -> list[int]:
    """Positions of the ``?`` placeholders of ``sql`` outside quotes."""
    found, quote = [], None
    for i, ch in enumerate(sql):
        if quote:
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "?":
            found.append(i)
    return found


def field_of(sql: str, index: int) -> str | None:
    """The column the ``index``-th placeholder of ``sql`` gives a value for, when the statement shows it.

    Examples
    --------
    >>> sql = "INSERT INTO people (person_key, name, phone) VALUES (?, ?, lower(?))"
    >>> field_of(sql, 1), field_of(sql, 2)
    ('name', 'phone')
    >>> field_of("UPDATE people SET name = ?, phone = ? WHERE id = ?", 1)
    'phone'
    >>> field_of("SELECT 1 WHERE ? IN (a, b)", 0) is None
    True
    """
    spots = _placeholders(sql)
    if index >= len(spots):
        return None
    before = sql[: spots[index]]
    named = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=|<>|!=|\bLIKE\b|\bILIKE\b)\s*$", before, flags=re.I)
    if named:
        return named.group(1)
    insert = re.match(r"\s*INSERT\s+INTO\s+[\w.]+\s*\(([^)]*)\)\s*VALUES\s*\(", sql, flags=re.I | re.S)
    if insert:
        columns = [c.strip() for c in insert.group(1).split(",")]
        start = insert.end()
        values, depth, item = [], 0, ""
        for ch in sql[start:]:
            if ch == "(":
                depth += 1
            elif ch == ")":
                if depth == 0:
                    values.append(item)
                    break
                depth -= 1
            elif ch == "," and depth == 0:
                values.append(item)
                item = ""
                continue
            item += ch
        seen = 0
        for column, value in zip(columns, values):
            count = value.count("?")
            if seen <= index < seen + count:
                return column
            seen += count
    return None


def check_params(sql: str, params: Sequence[Any] | None) -> None:
    """Refuse a statement whose text parameters hold a control character (see the module)."""
    if not params:
        return
    for i, value in enumerate(params):
        if isinstance(value, str):
            found = CONTROL.search(value)
            if found:
                raise _refusal(field_of(sql, i), found.group(0))


def check_rows(sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """:func:`check_params` for each row of an ``executemany``."""
    for row in rows:
        check_params(sql, row)


def _text_arrays(column: pa.ChunkedArray) -> list[pa.Array]:
    kind = column.type
    if pa.types.is_dictionary(kind):
        if not (pa.types.is_string(kind.value_type) or pa.types.is_large_string(kind.value_type)):
            return []
        return [chunk.dictionary for chunk in column.chunks]
    return list(column.chunks) if pa.types.is_string(kind) or pa.types.is_large_string(kind) else []


#: byte → refused (UTF-8 never uses bytes below 0x20 inside a multi-byte character)
_REFUSED_BYTES = np.zeros(256, dtype=bool)
_REFUSED_BYTES[[*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)]] = True


def _may_hold_control(array: pa.Array) -> bool:
    """Whether the bytes behind ``array`` hold a refused byte (a memory-speed scan; a hit is checked exactly)."""
    buffers = array.buffers()
    data = buffers[2] if len(buffers) > 2 else None
    if data is None or data.size == 0:
        return False
    raw = np.frombuffer(data, dtype=np.uint8)
    low = raw < 0x20
    return bool(low.any()) and bool(_REFUSED_BYTES[raw[low]].any())


def check_arrow(data: pa.Table) -> None:
    """Refuse a bulk insert whose text columns hold a control character, naming the column."""
    for name, column in zip(data.column_names, data.columns):
        for array in _text_arrays(column):
            if not len(array) or not _may_hold_control(array):
                continue
            if pc.any(pc.match_substring_regex(array, _CONTROL_RE2)).as_py():
                hit = next(v for v in array.to_pylist() if v is not None and CONTROL.search(v))
                raise _refusal(name, CONTROL.search(hit).group(0))
