r"""NASA FIRMS active-fire CSV reader: every real MODIS and VIIRS variant, fast, exact and forgiving.

:func:`read_firms` reads the CSV files FIRMS publishes (NRT and archive or
standard files, MODIS Collection 6/6.1 and VIIRS 375 m from S-NPP, NOAA-20 and
NOAA-21) into one frame with canonical columns, and keeps every row it cannot
accept in a rejected frame with its line number, a reason code, an English
message and the original text. Only a file that cannot be a FIRMS CSV at all
(not text, or lacking a required column) raises
:class:`gridwatch.errors.ValidationError`.

Accepted variants
    * VIIRS brightness columns named ``bright_ti4``/``bright_ti5`` or
      ``brightness``/``bright_t31``; the ``instrument`` column present or absent;
      confidence ``l``/``n``/``h`` or ``low``/``nominal``/``high``.
    * MODIS confidence 0-100; satellite ``T``/``A`` or ``Terra``/``Aqua``;
      VIIRS satellite ``N`` (S-NPP), ``N20`` or ``1`` (NOAA-20), ``N21`` or ``2``
      (NOAA-21); see :data:`SATELLITES`.
    * Archive files with the extra ``type`` column (:data:`FIRE_TYPES`).
    * ``acq_time`` HHMM in UTC with or without leading zeros (``5``, ``0005``,
      ``1405``) or ``HH:MM``; ``acq_date`` ``YYYY-MM-DD`` or ``M/D/YYYY``.
    * UTF-8 with or without BOM (UTF-16 with BOM is converted); CRLF, LF or CR;
      column names in any case with surrounding spaces; values quoted or not;
      comma, tab or semicolon separated (the header decides).

How it is fast
    The file is memory-mapped and parsed by ``pyarrow.csv`` in parallel blocks
    (quoting off, so one physical line is one record and line numbers are
    exact), numeric columns typed by the parser. When a line has the wrong
    number of fields the parse runs again on one thread, where the invalid-row
    handler numbers the lines it collects. A numeric column holding text
    makes the parser run again with that column as text, checked row by row.
    Low-cardinality text columns (dates, times, satellites, confidence, ...) are
    dictionary-encoded and only their distinct values are parsed in Python;
    everything else is numpy. Line breaks are indexed only when some row is
    rejected, to quote it.

Examples
--------
>>> text = b"latitude,longitude,brightness,acq_date,acq_time,satellite,confidence,daynight\n"
>>> text += b"34.5,112.4,320.5,2022-05-28,538,A,85,D\n34.5,112.4,320.5,2022-05-28,2460,A,85,D\n"
>>> result = read_firms(text, name="demo.csv")
>>> result.read, len(result.frame), result.frame.loc[0, "acq_time"], result.frame.loc[0, "confidence_class"]
(2, 1, Timestamp('2022-05-28 05:38:00+0000', tz='UTC'), 'high')
>>> result.rejected.to_dict("records")[0]["reason"], int(result.rejected.line[0])
('bad_time', 3)
"""

from __future__ import annotations

import csv
import datetime as dt
import mmap
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from gridwatch.errors import ValidationError

from .base import LayerRead, N_, empty_rejected, rejected_frame

__all__ = [
    "SOURCE",
    "COLUMNS",
    "SATELLITES",
    "SATELLITE_NAMES",
    "INSTRUMENTS",
    "CONFIDENCE_CLASSES",
    "MODIS_CONFIDENCE_NOMINAL",
    "MODIS_CONFIDENCE_HIGH",
    "FIRE_TYPES",
    "FIRE_TYPE_STATIC",
    "REJECT_REASONS",
    "REQUIRED_COLUMNS",
    "FirePointsLayer",
    "read_firms",
]


#: value of the output ``source`` column
SOURCE = "FIRMS"

#: output columns, in order
COLUMNS = ("line", "latitude", "longitude", "acq_time", "satellite", "instrument", "confidence", "confidence_class",
           "brightness", "bright_t31", "frp", "scan", "track", "daynight", "version", "fire_type", "source")

#: canonical satellite names, in a fixed order (MODIS first)
SATELLITE_NAMES = ("Terra", "Aqua", "S-NPP", "NOAA-20", "NOAA-21")

#: satellite code as written in FIRMS files (lower case; matching ignores case and surrounding spaces) -> canonical name
SATELLITES = MappingProxyType({
    "t": "Terra", "terra": "Terra",
    "a": "Aqua", "aqua": "Aqua",
    "n": "S-NPP", "npp": "S-NPP", "snpp": "S-NPP", "s-npp": "S-NPP", "suomi npp": "S-NPP", "suomi-npp": "S-NPP",
    "n20": "NOAA-20", "1": "NOAA-20", "noaa-20": "NOAA-20", "noaa20": "NOAA-20", "j1": "NOAA-20",
    "n21": "NOAA-21", "2": "NOAA-21", "noaa-21": "NOAA-21", "noaa21": "NOAA-21", "j2": "NOAA-21",
})

#: canonical satellite name -> instrument
INSTRUMENTS = MappingProxyType({"Terra": "MODIS", "Aqua": "MODIS", "S-NPP": "VIIRS", "NOAA-20": "VIIRS",
                                "NOAA-21": "VIIRS"})

#: confidence classes, lowest first
CONFIDENCE_CLASSES = ("low", "nominal", "high")
#: MODIS confidence (0-100) from which a detection is nominal, and high (FIRMS FAQ: <30 low, 30-79 nominal, >=80 high)
MODIS_CONFIDENCE_NOMINAL = 30
MODIS_CONFIDENCE_HIGH = 80

#: the ``type`` column of FIRMS archive (standard) files
FIRE_TYPES = MappingProxyType({0: "presumed vegetation fire", 1: "active volcano", 2: "other static land source",
                               3: "offshore"})
#: ``type`` of static land sources (industrial heat, gas flares, ...)
FIRE_TYPE_STATIC = 2

#: columns a file must have (besides one brightness column, ``bright_ti4`` or ``brightness``)
REQUIRED_COLUMNS = ("latitude", "longitude", "acq_date", "acq_time", "satellite", "confidence")

#: reason code -> English message template(s) of rejected rows; the first code that applies to a row wins
_MESSAGES: dict[str, tuple[str, ...]] = {
    "malformed": (N_("The line has {found} fields; the header has {expected}."),),
    "coordinate_missing": (N_("The {column} is empty."),),
    "coordinate_not_number": (N_("The {column} {value!r} is not a finite number."),),
    "coordinate_out_of_range": (
        N_("Latitude {latitude} or longitude {longitude} is out of range (latitude -90 to 90, longitude -180 to 180)."),
        N_("Latitude {latitude} is out of range; latitude and longitude ({longitude}) look swapped."),
    ),
    "bad_date": (N_("The acq_date {value!r} is not a date (YYYY-MM-DD or M/D/YYYY)."),),
    "bad_time": (N_("The acq_time {value!r} is not a UTC time of day (HHMM such as 0538 or 538, or HH:MM)."),),
    "unknown_satellite": (
        N_("Unknown satellite {value!r}; FIRMS uses T or A (MODIS), N, N20 or 1, N21 or 2 (VIIRS)."),
    ),
    "bad_confidence": (
        N_("The MODIS confidence {value!r} is not a whole number from 0 to 100."),
        N_("The VIIRS confidence {value!r} is not l, n or h (low, nominal, high)."),
    ),
    "bad_daynight": (N_("The daynight {value!r} is not D or N."),),
}
#: reason codes of rejected rows, in the order they are checked
REJECT_REASONS = tuple(_MESSAGES)
_CODE = {code: i for i, code in enumerate(REJECT_REASONS)}  # 0 = malformed, never set by the vector checks

_W_EMPTY = N_("The file is empty.")
_W_BLANK = N_("Skipped {count} empty lines.")
_W_OPTIONAL = N_("The file has no {columns} column; those values are left empty.")
_W_DUPLICATE = N_("The column {column!r} appears more than once; the first one is used.")
_W_ALIAS = N_("Both {used} and {ignored} columns are present; {used} is used.")
_W_NUMBER = N_("{count} rows have a {column} that is not a number; it is left empty.")
_W_TYPE = N_("{count} rows have a type that is not 0, 1, 2 or 3; it is left empty.")
_W_INSTRUMENT = N_("{count} rows name an instrument that does not match their satellite; the satellite decides.")
_W_UTF8 = N_("The file is not valid UTF-8; undecodable bytes were replaced.")

#: canonical column -> names it has in FIRMS files, preferred first
_ALIASES = {"brightness": ("bright_ti4", "brightness"), "bright_t31": ("bright_ti5", "bright_t31"),
            "fire_type": ("type",)}
_FLOAT_COLUMNS = ("latitude", "longitude", "brightness", "bright_t31", "frp", "scan", "track")
_TEXT_COLUMNS = ("acq_date", "acq_time", "satellite", "confidence", "daynight", "version", "instrument", "fire_type")
#: optional columns whose absence is worth a warning (``instrument`` and ``type`` are often absent)
_NOTED_OPTIONAL = ("bright_t31", "frp", "scan", "track", "daynight", "version")

_ASCII = re.ASCII
_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})", _ASCII)
_US_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})", _ASCII)
_HHMM = re.compile(r"\d{1,4}", _ASCII)
_HH_MM = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", _ASCII)
_WHOLE = re.compile(r"[+-]?\d{1,9}(?:\.0*)?", _ASCII)
#: RE2 pattern of what the float parser accepts (used only when a column fails to parse as a whole)
_NUMBER_RE2 = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$|^[+-]?(?i:nan|inf|infinity)$"
_VIIRS_CONFIDENCE = {"l": 0, "low": 0, "n": 1, "nominal": 1, "h": 2, "high": 2}
_DAYNIGHT = {"d": 0, "day": 0, "n": 1, "night": 1}
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_NS_PER_S = 1_000_000_000
_SNIFF_BYTES = 4096
#: parser block size: large blocks mean few chunks to combine
_BLOCK_SIZE = 1 << 24
#: block size of the parallel parse: enough blocks to keep both cores busy on a file of a million rows
_BLOCK_SIZE_THREADS = 1 << 22


# --------------------------------------------------------------------------
# the file's bytes
# --------------------------------------------------------------------------


class _Content:
    """The file's content from ``start`` on: bytes, or a read-only memory map of the file.

    Mapping a large file saves copying it before parsing; both kinds support
    ``find`` and slicing, which is all the reader does with the content in Python.
    """

    def __init__(self, raw: bytes | mmap.mmap) -> None:
        self.raw = raw
        self.start = 0
        self._ends: np.ndarray | list[bytes] | None = None

    @classmethod
    def load(cls, source: str | Path | bytes, name: str | None) -> tuple[_Content, str]:
        """Load a path (memory-mapped) or bytes; also return the name to report it under."""
        if isinstance(source, (bytes, bytearray, memoryview)):
            return cls(bytes(source)), name if name is not None else "<bytes>"
        if isinstance(source, str) and ("\n" in source or "\r" in source):
            raise TypeError("read_firms takes a path or the file's bytes; pass CSV text as bytes (text.encode()).")
        path = Path(source)
        with path.open("rb") as handle:
            try:
                raw: bytes | mmap.mmap = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            except (ValueError, OSError):  # an empty file, or one that cannot be mapped
                raw = handle.read()
        return cls(raw), name if name is not None else str(path)

    def close(self) -> None:
        """Release the memory map (if it is still exported, garbage collection releases it later)."""
        if isinstance(self.raw, mmap.mmap):
            try:
                self.raw.close()
            except BufferError:  # pragma: no cover - an arrow buffer still refers to it
                pass

    def replace(self, data: bytes) -> None:
        """Continue with ``data`` (converted or repaired content)."""
        self.close()
        self.raw, self.start, self._ends = data, 0, None

    def tail(self) -> bytes:
        """Return a copy of the content from ``start`` on."""
        return bytes(self.raw[self.start:])

    def head(self, size: int) -> bytes:
        return bytes(self.raw[self.start:self.start + size])

    @property
    def empty(self) -> bool:
        return self.start >= len(self.raw)

    def contains(self, sub: bytes) -> bool:
        return self.raw.find(sub, self.start) >= 0

    def line_end(self) -> int:
        """Position of the first line break from ``start`` (the length when there is none)."""
        newline = self.raw.find(b"\n", self.start)
        end = len(self.raw) if newline < 0 else newline
        cr = self.raw.find(b"\r", self.start, end)
        return end if cr < 0 else cr

    def skip_line(self, end: int) -> None:
        """Move ``start`` past the line that ends at ``end``."""
        self.start = end + (2 if self.raw[end:end + 2] == b"\r\n" else 1)

    def reader(self) -> pa.BufferReader:
        """Return an arrow reader over the content (no copy)."""
        return pa.BufferReader(pa.py_buffer(self.raw).slice(self.start))

    def line(self, number: int) -> str:
        """Line ``number`` (1-based, from ``start``) as text, without its line break.

        The first call indexes the line breaks (vectorised); files with lone CR
        line breaks are split with ``bytes.splitlines`` instead.
        """
        if self._ends is None:
            self._ends = self._line_ends()
        if isinstance(self._ends, list):
            return self._ends[number - 1].decode("utf-8", "replace")
        ends, size = self._ends, len(self.raw) - self.start
        begin = 0 if number == 1 else int(ends[number - 2]) + 1
        end = int(ends[number - 1]) if number - 1 < len(ends) else size
        text = bytes(self.raw[self.start + begin:self.start + end])
        return (text[:-1] if text.endswith(b"\r") else text).decode("utf-8", "replace")

    def _line_ends(self) -> np.ndarray | list[bytes]:
        """Positions of the LF line breaks, or (lone CRs present) the lines themselves."""
        buf = np.frombuffer(self.raw, dtype=np.uint8)[self.start:]
        cr = np.flatnonzero(buf == 13)
        if cr.size and (cr[-1] + 1 >= buf.size or not (buf[cr + 1] == 10).all()):
            del buf
            return self.tail().splitlines()
        ends = np.flatnonzero(buf == 10)
        del buf
        return ends


def _check_text(content: _Content, label: str) -> None:
    """Drop a UTF-8 BOM, convert UTF-16 (with BOM) to UTF-8, refuse what is not text."""
    head = content.head(_SNIFF_BYTES)
    if head.startswith(b"\xef\xbb\xbf"):
        content.start += 3
        head = head[3:]
    elif head.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            content.replace(content.tail().decode("utf-16").encode("utf-8"))
        except UnicodeDecodeError:
            raise ValidationError("{file} is not CSV text: it holds binary data.", file=label) from None
        head = content.head(_SNIFF_BYTES)
    if b"\x00" in head:
        raise ValidationError("{file} is not CSV text: it holds binary data.", file=label)
    start = head.lstrip()
    if start.startswith(b"<"):
        raise ValidationError("{file} is not CSV text: it looks like an HTML or XML page (it starts with {start!r}).",
                              file=label, start=start[:60].decode("utf-8", "replace").splitlines()[0])


def _skip_blank_lines(content: _Content) -> int:
    """Skip whitespace-only lines before the header; return how many were skipped."""
    skipped = 0
    while not content.empty:
        end = content.line_end()
        if content.raw[content.start:end].strip():
            break
        content.skip_line(end)
        skipped += 1
    return skipped


# --------------------------------------------------------------------------
# the header
# --------------------------------------------------------------------------


def _split_fields(line: str, delimiter: str) -> list[str]:
    """Fields of one line; quoted fields are honoured only when the line holds a quote."""
    if '"' in line:
        return next(csv.reader([line], delimiter=delimiter), [])
    return line.split(delimiter)


def _sniff_delimiter(header: str) -> str:
    if "," in header:
        return ","
    for candidate in ("\t", ";"):
        if candidate in header:
            return candidate
    return ","


class _Header:
    """The file's columns: unique names for the parser and where each canonical column comes from."""

    def __init__(self, text: str, label: str, warnings: list[str]) -> None:
        self.delimiter = _sniff_delimiter(text)
        given = [n.strip().strip('"').strip() for n in _split_fields(text, self.delimiter)]
        raw = [n.lower() for n in given]
        #: unique column names for the parser, one per field
        self.names: list[str] = []
        seen: set[str] = set()
        for i, name in enumerate(raw):
            unique = name or f"_column_{i + 1}"
            if name in seen:
                if name:
                    warnings.append(_W_DUPLICATE.format(column=name))
                unique = f"_duplicate_{i + 1}_{name}"
            seen.add(name)
            self.names.append(unique)
        #: canonical column -> parser column name
        self.source: dict[str, str] = {}
        for canonical in (*_FLOAT_COLUMNS, *_TEXT_COLUMNS):
            present = [a for a in _ALIASES.get(canonical, (canonical,)) if a in seen]
            if present:
                self.source[canonical] = present[0]
                for other in present[1:]:
                    warnings.append(_W_ALIAS.format(used=present[0], ignored=other))
        missing = [c for c in REQUIRED_COLUMNS if c not in self.source]
        if "brightness" not in self.source:
            missing.append("brightness (or bright_ti4)")
        if missing:
            raise ValidationError(
                "{file} is not a FIRMS active-fire CSV: it lacks the column(s) {missing}; the columns found are "
                "{found}.", file=label, missing=", ".join(missing), found=", ".join(n for n in given if n) or "none")
        absent = [c for c in _NOTED_OPTIONAL if c not in self.source]
        if absent:
            warnings.append(_W_OPTIONAL.format(columns=", ".join(absent)))
        #: parser column name -> position in a line
        self.position = {n: i for i, n in enumerate(self.names)}

    def field(self, fields: Sequence[str], canonical: str) -> str:
        """Return the stripped text of ``canonical`` among a line's fields ('' when the line is short)."""
        pos = self.position[self.source[canonical]]
        return fields[pos].strip() if pos < len(fields) else ""


# --------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------


@dataclass
class _Parsed:
    """The parser's output: the needed columns, each row's line number, malformed and blank lines."""

    table: pa.Table
    lines: np.ndarray  # int64, 1-based from the header
    malformed: list[tuple[int, str, int]]  # (line, text, number of fields)
    blank: int
    quoted: bool


def _parse(content: _Content, header: _Header, label: str, warnings: list[str]) -> _Parsed:
    """Run the CSV parser with numeric columns typed; a column holding text is parsed again as text.

    A value that is not a number stops arrow's typed conversion; the error names the
    column, which the next run reads as text (to be checked row by row). Invalid
    UTF-8 is replaced, with a warning.
    """
    quoted = content.contains(b'"')
    floats = [header.source[c] for c in _FLOAT_COLUMNS if c in header.source]
    as_text = set(floats) if quoted else set()
    threads = not quoted
    for _ in range(len(floats) + 3):
        try:
            parsed = _parse_once(content, header, as_text=as_text, quoted=quoted, threads=threads)
            if parsed is not None:
                return parsed
            threads = False  # some line is invalid: numbering it needs the parse on one thread
        except pa.ArrowInvalid as exc:
            text = str(exc)
            column = re.match(r"In CSV column #(\d+)", text)
            name = header.names[int(column[1])] if column and int(column[1]) < len(header.names) else None
            if "UTF8" in text or "UTF-8" in text:
                content.replace(content.tail().decode("utf-8", "replace").encode("utf-8"))
                warnings.append(_W_UTF8)
            elif "conversion error" in text and name in floats and name not in as_text:
                as_text.add(name)
            elif "conversion error" in text and not as_text.issuperset(floats):
                as_text.update(floats)
            else:
                raise ValidationError("{file} could not be read as CSV: {error}", file=label, error=text) from None
    raise ValidationError("{file} could not be read as CSV: {error}", file=label,  # pragma: no cover
                          error="the parser kept failing")


def _parse_once(content: _Content, header: _Header, *, as_text: set[str], quoted: bool,
                threads: bool = False) -> _Parsed | None:
    """Parse once: numeric columns typed except ``as_text``; invalid rows collected by number.

    With ``threads`` the blocks are parsed in parallel, where the invalid-row
    handler cannot number rows: then None is returned as soon as a row is
    invalid (the caller parses again on one thread), and otherwise every line
    is a row, numbered in order.
    """
    expected = len(header.names)
    delimiter = header.delimiter
    skipped: list[int] = []
    rescued: list[tuple[int, list[str]]] = []
    malformed: list[tuple[int, str, int]] = []
    blank = 0
    blank_chars = delimiter + ' \t"'

    def on_invalid(row: Any) -> str:
        nonlocal blank
        if threads:
            skipped.append(-1)
            return "skip"
        text = row.text
        skipped.append(row.number)
        if not text.strip(blank_chars):
            blank += 1
        elif quoted and '"' in text and len(fields := _split_fields(text, delimiter)) == expected:
            rescued.append((row.number, fields))  # a quoted field held the delimiter
        else:
            malformed.append((row.number, text, row.actual_columns))
        return "skip"

    include = list(dict.fromkeys(header.source.values()))
    floats = {header.source[c] for c in _FLOAT_COLUMNS if c in header.source}
    # text columns arrive dictionary-encoded from the parser (few distinct values: dates, satellites, ...);
    # a file with quotes keeps plain text, since rescued lines are appended as text
    text = pa.string() if quoted else pa.dictionary(pa.int32(), pa.string())
    types = {n: pa.float64() if n in floats and n not in as_text else pa.string() if n in floats else text
             for n in include}
    table = pacsv.read_csv(
        content.reader(),
        read_options=pacsv.ReadOptions(use_threads=threads, column_names=header.names, skip_rows=1,
                                       block_size=_BLOCK_SIZE_THREADS if threads else _BLOCK_SIZE),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char=False, ignore_empty_lines=False,
                                         invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(column_types=types, include_columns=include, null_values=[""],
                                             strings_can_be_null=False, quoted_strings_can_be_null=False),
    )
    if threads and skipped:
        return None
    # With quoting off every physical line is one record, and on one thread the handler's row numbers
    # count every record with the header as 1, so the parsed rows take the numbers the handler did not.
    total = table.num_rows + len(skipped)
    lines = np.arange(2, total + 2, dtype=np.int64)
    if skipped:
        gone = np.asarray(skipped, dtype=np.int64)
        if gone.min() < 2 or gone.max() > total + 1:  # pragma: no cover - pyarrow changed its numbering
            raise RuntimeError(f"pyarrow numbered invalid rows {gone.min()}..{gone.max()} among {total} rows")
        keep = np.ones(total, dtype=bool)
        keep[gone - 2] = False
        lines = lines[keep]
    if rescued:
        extra = pa.table({n: pa.array([f[header.position[n]] for _, f in rescued], pa.string()) for n in include})
        table = pa.concat_tables([table, extra.select(table.column_names)])
        lines = np.concatenate([lines, np.array([n for n, _ in rescued], dtype=np.int64)])
        order = np.argsort(lines, kind="stable")
        table, lines = table.take(pa.array(order)), lines[order]
    return _Parsed(table=table, lines=lines, malformed=malformed, blank=blank, quoted=quoted)


# --------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------


def _floats(col: pa.ChunkedArray, quoted: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values (NaN where empty or not a number), an ``empty`` mask and a ``not a number`` mask."""
    n = len(col)
    if pa.types.is_floating(col.type):
        empty = pc.is_null(col).to_numpy(zero_copy_only=False) if col.null_count else np.zeros(n, dtype=bool)
        return col.to_numpy(), empty, np.zeros(n, dtype=bool)
    text = pc.utf8_trim(col, ' \t"') if quoted else pc.utf8_trim_whitespace(col)
    is_empty = pc.equal(text, "")
    text = pc.if_else(is_empty, pa.scalar(None, pa.string()), text)
    empty = is_empty.to_numpy(zero_copy_only=False) if n else np.zeros(0, dtype=bool)
    try:
        numbers = pc.cast(text, pa.float64())
        bad = np.zeros(n, dtype=bool)
    except pa.ArrowInvalid:
        ok = pc.fill_null(pc.match_substring_regex(text, _NUMBER_RE2), False)
        try:
            numbers = pc.cast(pc.if_else(ok, text, pa.scalar(None, pa.string())), pa.float64())
        except pa.ArrowInvalid:  # pragma: no cover - the pattern and arrow's parser disagree
            numbers = pa.array([_to_float(v) for v in text.to_pylist()], pa.float64())
            ok = pc.is_valid(numbers)
        bad = ~ok.to_numpy(zero_copy_only=False) & ~empty
    values = numbers.to_numpy() if n else np.zeros(0)
    return values, empty, bad


def _to_float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _factor(col: pa.ChunkedArray) -> tuple[list[str], np.ndarray]:
    """Return the distinct values of a text column and each row's index among them (int32)."""
    if pa.types.is_dictionary(col.type):  # encoded by the parser, one dictionary per block: unify them
        encoded = col.unify_dictionaries()
    else:
        encoded = col.dictionary_encode()  # one hash table across chunks: the chunks share one dictionary
    chunks = encoded.chunks
    if not chunks:
        return [], np.zeros(0, dtype=np.int32)
    dictionary = chunks[0].dictionary
    if any(len(c.dictionary) != len(dictionary) for c in chunks):  # pragma: no cover - older pyarrow
        combined = col.combine_chunks().dictionary_encode()
        return combined.dictionary.to_pylist(), combined.indices.to_numpy(zero_copy_only=False)
    codes = [c.indices.to_numpy(zero_copy_only=False) for c in chunks]
    return dictionary.to_pylist(), codes[0] if len(codes) == 1 else np.concatenate(codes)


def _lookup(uniques: list[str], parse: Callable[[str], int | None]) -> np.ndarray:
    """``parse`` of each distinct value as int64, -1 where it gives None: ``lut[codes]`` is every row's value."""
    return np.array([-1 if (v := parse(u)) is None else v for u in uniques], dtype=np.int64)


def _rows_below_zero(lut: np.ndarray, codes: np.ndarray) -> np.ndarray | None:
    """Rows whose value is negative (a failed parse), or None when no distinct value is."""
    return lut[codes] < 0 if (lut < 0).any() else None


def _clean(text: str) -> str:
    return text.strip().strip('"').strip()


def _parse_date(text: str) -> int | None:
    """Days since 1970-01-01 of ``YYYY-MM-DD`` or ``M/D/YYYY``."""
    text = _clean(text)
    if m := _ISO_DATE.fullmatch(text):
        y, mo, d = m.groups()
    elif m := _US_DATE.fullmatch(text):
        mo, d, y = m.groups()
    else:
        return None
    try:
        return dt.date(int(y), int(mo), int(d)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None


def _parse_time(text: str) -> int | None:
    """Seconds after midnight of HHMM (1-4 digits) or ``HH:MM[:SS]``."""
    text = _clean(text)
    if _HHMM.fullmatch(text):
        h, m = divmod(int(text), 100)
        s = 0
    elif match := _HH_MM.fullmatch(text):
        h, m, s = int(match[1]), int(match[2]), int(match[3] or 0)
    else:
        return None
    return h * 3600 + m * 60 + s if h < 24 and m < 60 and s < 60 else None


def _parse_satellite(text: str) -> int | None:
    name = SATELLITES.get(_clean(text).lower())
    return None if name is None else SATELLITE_NAMES.index(name)


def _parse_modis_confidence(text: str) -> int | None:
    text = _clean(text)
    if not _WHOLE.fullmatch(text):
        return None
    value = int(float(text))
    return value if 0 <= value <= 100 else None


def _modis_class(value: int | None) -> int | None:
    if value is None:
        return None
    return int(value >= MODIS_CONFIDENCE_NOMINAL) + int(value >= MODIS_CONFIDENCE_HIGH)


def _parse_viirs_confidence(text: str) -> int | None:
    return _VIIRS_CONFIDENCE.get(_clean(text).lower())


def _parse_daynight(text: str) -> int | None:
    return _DAYNIGHT.get(_clean(text).lower())


def _parse_fire_type(text: str) -> int:
    """0-3; -1 when empty; -2 when something else."""
    text = _clean(text)
    if not text:
        return -1
    value = int(float(text)) if _WHOLE.fullmatch(text) else -2
    return value if value in FIRE_TYPES else -2


# --------------------------------------------------------------------------
# the frame
# --------------------------------------------------------------------------


def _text_column(entries: Sequence[str | None], codes: np.ndarray) -> pd.Series:
    """Return a ``str`` Series of ``entries[codes]`` (None gives a missing value).

    Entries of one byte width (one value, ``D``/``N``, ``MODIS``/``VIIRS``) are laid
    out directly as fixed-width bytes; others go through arrow's ``take``.
    """
    m = len(codes)
    encoded = [None if e is None else e.encode("utf-8") for e in entries]
    widths = {None if e is None else len(e) for e in encoded}
    if len(widths) == 1 and None not in widths and m:
        width = widths.pop()
        table = np.array(encoded, dtype=f"S{width}") if width else np.zeros(len(encoded), dtype="S1")
        data = table[codes].tobytes() if len(encoded) > 1 else encoded[0] * m
        offsets = np.arange(0, width * (m + 1), width, dtype=np.int64) if width else np.zeros(m + 1, dtype=np.int64)
        array = pa.LargeStringArray.from_buffers(m, pa.py_buffer(offsets), pa.py_buffer(data))
    elif len(set(entries)) == 1 and entries[0] is None:
        array = pa.nulls(m, pa.large_string())
    else:
        array = pa.array(list(entries), pa.large_string()).take(pa.array(codes.astype(np.int32, copy=False)))
    return array.to_pandas()


def _int_column(values: np.ndarray, missing: np.ndarray) -> pd.arrays.IntegerArray:
    return pd.arrays.IntegerArray(values.astype(np.int64, copy=False), missing.astype(bool, copy=False))


def _assemble(columns: dict[str, Any]) -> pd.DataFrame:
    """Build the output frame in :data:`COLUMNS` order without copying or restacking the columns.

    The arrays are private to this call, so the frame may own them; arrays that
    are read-only views of arrow memory are copied so the frame stays writable.
    """
    series = {}
    for name in COLUMNS:
        value = columns[name]
        if isinstance(value, np.ndarray) and not value.flags.writeable:
            value = value.copy()
        series[name] = value if isinstance(value, pd.Series) else pd.Series(value, copy=False)
    return pd.DataFrame(series, copy=False)


def _empty_result(label: str, warnings: list[str]) -> LayerRead:
    none = np.zeros(0, dtype=np.int64)
    text = _text_column((None, None), none)
    columns = {
        **{c: none.astype(float) for c in _FLOAT_COLUMNS},
        "line": none, "acq_time": pd.Series(none.view("M8[ns]")).dt.tz_localize("UTC"), "satellite": text,
        "instrument": text, "confidence": _int_column(none, none), "confidence_class": text, "daynight": text,
        "version": text, "fire_type": _int_column(none, none), "source": text,
    }
    return LayerRead(source=label, frame=_assemble(columns), rejected=empty_rejected(), read=0,
                     warnings=warnings)


def read_firms(source: str | Path | bytes, /, *, name: str | None = None) -> LayerRead:
    """Read a NASA FIRMS active-fire CSV file (MODIS or VIIRS, NRT or archive) into canonical columns.

    Parameters
    ----------
    source : str, Path or bytes
        The file's path (a ``str`` is a path), or the file's content as bytes.
    name : str, optional
        The name to report the file under (default: the path as given, or ``"<bytes>"``).

    Returns
    -------
    LayerRead
        ``frame`` holds the accepted rows in file order with the columns of :data:`COLUMNS`:

        ====================  ===================  ==============================================
        column                dtype                meaning
        ====================  ===================  ==============================================
        ``line``              int64                1-based line in the file (the header is 1)
        ``latitude``          float64              degrees, WGS84
        ``longitude``         float64              degrees, WGS84
        ``acq_time``          datetime64[ns, UTC]  ``acq_date`` + ``acq_time``
        ``satellite``         str                  Terra, Aqua, S-NPP, NOAA-20, NOAA-21
        ``instrument``        str                  MODIS or VIIRS (from the satellite)
        ``confidence``        Int64                0-100 for MODIS, <NA> for VIIRS
        ``confidence_class``  str                  low, nominal, high
        ``brightness``        float64              K: ``bright_ti4`` or ``brightness``
        ``bright_t31``        float64              K: ``bright_ti5`` or ``bright_t31``
        ``frp``               float64              fire radiative power, MW
        ``scan``, ``track``   float64              pixel size, km
        ``daynight``          str                  D or N
        ``version``           str                  as in the file (``6.1NRT``, ``2.0NRT``, ...)
        ``fire_type``         Int64                ``type`` (0-3); <NA> when the file has none
        ``source``            str                  ``"FIRMS"``
        ====================  ===================  ==============================================

        ``rejected`` holds the rows that cannot be used: ``line``, ``reason`` (a
        code of :data:`REJECT_REASONS`; the first that applies), an English
        ``message`` and the ``raw`` line. ``read`` counts accepted + rejected rows;
        blank lines (or lines of bare separators) are skipped and not counted.
        Optional columns absent from the file (``scan``, ``track``, ``frp``,
        ``bright_t31``, ``daynight``, ``version``) are left empty, with a warning.

    Raises
    ------
    ValidationError
        The file is not CSV text (binary data, an HTML page), or lacks a required
        column (:data:`REQUIRED_COLUMNS` and ``bright_ti4`` or ``brightness``).
    OSError
        The path cannot be read.

    Notes
    -----
    An empty file, or one with only a header, is not an error: it has no rows.
    The parse runs in parallel blocks; a file with malformed lines is parsed again on one thread (numbering
    them needs it).
    """
    content, label = _Content.load(source, name)
    try:
        return _read(content, label)
    finally:
        content.close()


def _read(content: _Content, label: str) -> LayerRead:
    warnings: list[str] = []
    _check_text(content, label)
    offset = _skip_blank_lines(content)
    if content.empty:
        return _empty_result(label, [_W_EMPTY])
    end = content.line_end()
    try:
        header_text = bytes(content.raw[content.start:end]).decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("{file} is not CSV text: its first line is not UTF-8.", file=label) from None
    header = _Header(header_text, label, warnings)
    if content.raw[-1:] not in (b"\n", b"\r"):
        content.replace(content.tail() + b"\n")
    parsed = _parse(content, header, label, warnings)
    return _convert(parsed, content, header, label, offset, warnings)


def _convert(parsed: _Parsed, content: _Content, header: _Header, label: str, offset: int,
             warnings: list[str]) -> LayerRead:
    """Check and convert the parsed columns (vectorised); quote and explain the rejected rows."""
    table, lines = parsed.table, parsed.lines
    n = table.num_rows

    def col(canonical: str) -> pa.ChunkedArray | None:
        name = header.source.get(canonical)
        return None if name is None else table.column(name)

    lat, lat_empty, lat_bad = _floats(col("latitude"), parsed.quoted)
    lng, lng_empty, lng_bad = _floats(col("longitude"), parsed.quoted)
    measures: dict[str, np.ndarray] = {}
    for canonical in _FLOAT_COLUMNS[2:]:
        column = col(canonical)
        if column is None:
            measures[canonical] = np.full(n, np.nan)
            continue
        measures[canonical], _, bad = _floats(column, parsed.quoted)
        if bad.any():
            warnings.append(_W_NUMBER.format(count=int(bad.sum()), column=header.source[canonical]))

    dates, date_codes = _factor(col("acq_date"))
    times, time_codes = _factor(col("acq_time"))
    sats, sat_codes = _factor(col("satellite"))
    confs, conf_codes = _factor(col("confidence"))
    day_lut, second_lut = _lookup(dates, _parse_date), _lookup(times, _parse_time)
    sat_lut = _lookup(sats, _parse_satellite)
    modis_lut = (sat_lut >= 0) & (sat_lut <= 1)
    known = sat_lut >= 0
    # one instrument in the whole file (the usual case) spares the per-row choices
    uniform = bool(modis_lut[known].all()) or not modis_lut[known].any()
    all_modis = bool(known.any() and modis_lut[known].all())
    modis_value_lut = _lookup(confs, _parse_modis_confidence)
    modis_class_lut = _lookup(confs, lambda s: _modis_class(_parse_modis_confidence(s)))
    viirs_class_lut = _lookup(confs, _parse_viirs_confidence)
    if uniform:
        is_modis = np.full(n, all_modis)
        bad_confidence = _rows_below_zero(modis_class_lut if all_modis else viirs_class_lut, conf_codes)
    else:
        is_modis = modis_lut[sat_codes]
        class_rows = np.where(is_modis, modis_class_lut[conf_codes], viirs_class_lut[conf_codes])
        bad_confidence = (class_rows < 0) & (sat_lut[sat_codes] >= 0)
    daynight = col("daynight")
    dn_lut = dn_codes = None
    if daynight is not None:
        dns, dn_codes = _factor(daynight)
        dn_lut = _lookup(dns, _parse_daynight)

    # Which rows fail, and why: the first failing check wins.
    with np.errstate(invalid="ignore"):
        coordinates_ok = (np.abs(lat) <= 90) & (np.abs(lng) <= 180)  # False for NaN
    coordinate_checks: list[tuple[str, np.ndarray | None]] = []
    if not coordinates_ok.all():
        coordinate_checks = [
            ("coordinate_missing", lat_empty | lng_empty),
            ("coordinate_not_number", lat_bad | lng_bad | ~np.isfinite(lat) | ~np.isfinite(lng)),
            ("coordinate_out_of_range", ~coordinates_ok),
        ]
    checks = [
        *coordinate_checks,
        ("bad_date", _rows_below_zero(day_lut, date_codes)),
        ("bad_time", _rows_below_zero(second_lut, time_codes)),
        ("unknown_satellite", _rows_below_zero(sat_lut, sat_codes)),
        ("bad_confidence", bad_confidence),
        ("bad_daynight", None if dn_lut is None else _rows_below_zero(dn_lut, dn_codes)),
    ]
    reason = np.zeros(n, dtype=np.int8)
    for code, mask in reversed(checks):
        if mask is not None:
            reason[mask] = _CODE[code]

    # Lines of bare separators parse as all-empty rows: they are blank lines, not rejects.
    blanks = parsed.blank
    if lat_empty.any():
        for i in np.flatnonzero(lat_empty & lng_empty):
            if not content.line(int(lines[i])).strip(header.delimiter + ' \t"'):
                reason[i] = -1
                blanks += 1
    if blanks:
        warnings.append(_W_BLANK.format(count=blanks))

    rejected = _rejected(parsed, content, header, reason, lines, offset, lat, lng, lat_empty, lat_bad, is_modis)

    # The accepted rows.
    idx = np.flatnonzero(reason == 0)
    every = idx.size == n
    m = idx.size

    def sel(a: np.ndarray) -> np.ndarray:
        return a if every else a[idx]

    rows_modis = sel(is_modis)
    conf_rows = sel(conf_codes)
    if uniform:
        class_entries = [CONFIDENCE_CLASSES[c] if c >= 0 else None
                         for c in (modis_class_lut if all_modis else viirs_class_lut)]
        confidence_class = _text_column(class_entries, conf_rows)
        confidence = (_int_column(modis_value_lut[conf_rows], np.zeros(m, dtype=bool)) if all_modis
                      else _int_column(np.zeros(m, dtype=np.int64), np.ones(m, dtype=bool)))
    else:
        classes = np.where(rows_modis, modis_class_lut[conf_rows], viirs_class_lut[conf_rows])
        confidence_class = _text_column(CONFIDENCE_CLASSES, classes)
        confidence = _int_column(np.where(rows_modis, modis_value_lut[conf_rows], 0), ~rows_modis)
    sat_rows = sel(sat_codes)
    seconds = day_lut[sel(date_codes)] * 86_400 + second_lut[sel(time_codes)]
    others: dict[str, Any] = {
        "line": sel(lines) + offset,
        "acq_time": pd.Series((seconds * _NS_PER_S).view("M8[ns]"), copy=False).dt.tz_localize("UTC"),
        "satellite": _text_column([SATELLITE_NAMES[s] if s >= 0 else None for s in sat_lut], sat_rows),
        "instrument": _text_column([INSTRUMENTS[SATELLITE_NAMES[s]] if s >= 0 else None for s in sat_lut], sat_rows),
        "confidence": confidence,
        "confidence_class": confidence_class,
        "daynight": (_text_column([("D", "N")[v] if v >= 0 else None for v in dn_lut], sel(dn_codes))
                     if dn_lut is not None else _text_column((None,), np.zeros(m, dtype=np.int32))),
        "version": _version(col("version"), sel, m),
        "fire_type": _fire_type(col("fire_type"), sel, m, warnings),
        "source": _text_column((SOURCE,), np.zeros(m, dtype=np.int32)),
    }
    _check_instrument(col("instrument"), sel, sat_lut, sat_rows, warnings)
    others.update({"latitude": sel(lat), "longitude": sel(lng), **{c: sel(v) for c, v in measures.items()}})
    return LayerRead(source=label, frame=_assemble(others), rejected=rejected, read=m + len(rejected),
                     warnings=warnings)


def _rejected(parsed: _Parsed, content: _Content, header: _Header, reason: np.ndarray, lines: np.ndarray,
              offset: int, lat: np.ndarray, lng: np.ndarray, lat_empty: np.ndarray, lat_bad: np.ndarray,
              is_modis: np.ndarray) -> pd.DataFrame:
    """List the rejected rows with line numbers, reason codes, English messages and the original lines."""
    line: list[int] = []
    code: list[str] = []
    message: list[str] = []
    raw: list[str] = []
    for number, text, found in parsed.malformed:
        line.append(number + offset)
        code.append("malformed")
        message.append(_MESSAGES["malformed"][0].format(found=found, expected=len(header.names)))
        raw.append(text)
    for i in np.flatnonzero(reason > 0):
        text = content.line(int(lines[i]))
        why = REJECT_REASONS[reason[i]]
        line.append(int(lines[i]) + offset)
        code.append(why)
        message.append(_explain(why, int(i), _split_fields(text, header.delimiter), header, lat, lng, lat_empty,
                                lat_bad, is_modis))
        raw.append(text)
    return rejected_frame(line, code, message, raw) if line else empty_rejected()


def _version(column: pa.ChunkedArray | None, sel: Callable[[np.ndarray], np.ndarray], m: int) -> pd.Series:
    if column is None:
        return _text_column((None,), np.zeros(m, dtype=np.int32))
    uniques, codes = _factor(column)
    return _text_column([_clean(u) or None for u in uniques], sel(codes))


def _fire_type(column: pa.ChunkedArray | None, sel: Callable[[np.ndarray], np.ndarray], m: int,
               warnings: list[str]) -> pd.arrays.IntegerArray:
    if column is None:
        return _int_column(np.zeros(m, dtype=np.int64), np.ones(m, dtype=bool))
    uniques, codes = _factor(column)
    values = _lookup(uniques, _parse_fire_type)[sel(codes)]
    unknown = int((values == -2).sum())
    if unknown:
        warnings.append(_W_TYPE.format(count=unknown))
    return _int_column(np.maximum(values, 0), values < 0)


def _check_instrument(column: pa.ChunkedArray | None, sel: Callable[[np.ndarray], np.ndarray], sat_lut: np.ndarray,
                      sat_rows: np.ndarray, warnings: list[str]) -> None:
    """Warn when the ``instrument`` column contradicts the satellite (the satellite decides)."""
    if column is None or not len(sat_rows):
        return
    uniques, codes = _factor(column)
    kinds = ("", "MODIS", "VIIRS")
    given = np.array([kinds.index(g) if (g := _clean(u).upper()) in kinds else 3 for u in uniques], dtype=np.int8)
    derived = np.where((sat_lut >= 0) & (sat_lut <= 1), 1, 2).astype(np.int8)
    used = np.unique(derived[sat_lut >= 0])  # distinct values only: cheap
    if len(used) == 1 and set(given.tolist()) <= {0, int(used[0])}:
        return  # one instrument, and the column agrees wherever it is filled
    given_rows = given[sel(codes)]
    mismatched = int(((given_rows != 0) & (given_rows != derived[sat_rows])).sum())
    if mismatched:
        warnings.append(_W_INSTRUMENT.format(count=mismatched))


def _explain(code: str, i: int, fields: list[str], header: _Header, lat: np.ndarray, lng: np.ndarray,
             lat_empty: np.ndarray, lat_bad: np.ndarray, is_modis: np.ndarray) -> str:
    """Explain rejected row ``i`` in English."""
    templates = _MESSAGES[code]
    if code == "coordinate_missing":
        return templates[0].format(column="latitude" if lat_empty[i] else "longitude")
    if code == "coordinate_not_number":
        column = "latitude" if lat_bad[i] or not np.isfinite(lat[i]) else "longitude"
        return templates[0].format(column=column, value=header.field(fields, column))
    if code == "coordinate_out_of_range":
        swapped = abs(lat[i]) > 90 and abs(lng[i]) <= 90
        latitude, longitude = header.field(fields, "latitude"), header.field(fields, "longitude")
        return templates[1 if swapped else 0].format(latitude=latitude, longitude=longitude)
    column = {"bad_date": "acq_date", "bad_time": "acq_time", "unknown_satellite": "satellite",
              "bad_confidence": "confidence", "bad_daynight": "daynight"}[code]
    template = templates[1 if code == "bad_confidence" and not is_modis[i] else 0]
    return template.format(value=header.field(fields, column))


class FirePointsLayer:
    """The fire-points layer: NASA FIRMS active-fire CSV files (implements :class:`layers.base.Layer`).

    Examples
    --------
    >>> from layers.base import Layer
    >>> isinstance(FirePointsLayer(), Layer), FirePointsLayer.kind
    (True, 'fire_points')
    """

    kind = "fire_points"

    def read(self, source: Path | bytes, /, *, name: str | None = None, **options: Any) -> LayerRead:
        """Read one FIRMS CSV file; see :func:`read_firms` (this layer takes no options)."""
        if options:
            raise TypeError(f"the fire_points layer takes no options (got {', '.join(sorted(options))})")
        return read_firms(source, name=name)
