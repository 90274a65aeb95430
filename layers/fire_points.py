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

How it is fast, and bounded
    A first pass scans the file for quotes, overlong lines and bytes that are
    not UTF-8. Then it is read in chunks of 4 MB cut after a line break, each
    parsed by ``pyarrow.csv`` (quoting off, so one physical line is one record;
    numeric columns typed by the parser) on a thread of its own that runs one
    chunk ahead while the previous chunk is checked and converted. The
    invalid-row handler numbers the lines it sets aside, so every row's line
    number is exact. A numeric column holding text makes the parser run again
    with that column as text, checked row by row. Low-cardinality text columns
    (dates, times, satellites, confidence, ...) are dictionary-encoded and only
    their distinct values are parsed in Python; everything else is numpy. The
    rejected lines are read again at the end, to quote them. Nothing holds the
    whole file: a read holds a few chunks and the rows it accepts, and a file
    whose unusable lines pass :data:`MAX_UNUSABLE_ROWS` and outnumber its good
    rows is refused as soon as they do.

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

import codecs
import csv
import datetime as dt
import io
import queue
import re
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from gridwatch.errors import ValidationError

from .base import N_, LayerRead, empty_rejected, rejected_frame

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
    "MAX_UNUSABLE_ROWS",
    "EARLIEST_ACQUISITION",
    "FUTURE_TOLERANCE",
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
    "acquired_in_future": (
        N_("The acquisition {date} {time} UTC is later than the time of reading ({now} UTC, allowing {minutes} "
           "minutes of clock difference); a detection cannot come from the future: check acq_date and acq_time."),
    ),
    "acquired_before_record": (
        N_("The acq_date {value!r} is before {earliest}, the start of the satellite fire record; check the date."),
    ),
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

#: the first day of the satellite fire record (MODIS on Terra); equals ``gridwatch.policy.EARLIEST_DATA``, which
#: this leaf module may not import (the service passes that one)
EARLIEST_ACQUISITION = dt.date(2000, 11, 1)
#: how far past the reading's "now" an acquisition may lie: FIRMS products are published hours after the overpass
#: (near-real-time about three hours), so a genuine detection is always in the past; the tolerance only absorbs
#: clock differences between this server and the satellite ground segment and the minute rounding of acq_time
FUTURE_TOLERANCE = dt.timedelta(hours=1)

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
#: the size of the chunks parsed one at a time (a read holds a few of them beyond the rows it accepts)
_BLOCK_SIZE = 1 << 22
#: the longest start of a file before its header ends (a FIRMS header is about 120 bytes)
_MAX_HEADER_BYTES = 1 << 16
#: bytes read at a time when the content is recoded
_CHUNK = 1 << 22
#: a line this long is not a FIRMS line (they are about 100 bytes): the file is refused
_LONG_LINE = 1 << 19
#: unusable lines (rejected, malformed or blank) from which a file whose unusable lines outnumber its good rows is
#: refused as a whole: it is not a FIRMS file, and listing each of its lines would flood memory and the database
MAX_UNUSABLE_ROWS = 10_000
#: column names quoted in the error about a header that lacks required columns
_MAX_NAMES_SHOWN = 40


# --------------------------------------------------------------------------
# the file's bytes
# --------------------------------------------------------------------------


class _Source:
    """Where the content comes from (a path or bytes), how it is recoded, and where its header starts.

    Nothing holds the whole file: each pass (the header, the parse, the lines of
    rejected rows) reads it again as a stream. Content that is not UTF-8 as it
    is (UTF-16, or undecodable bytes to replace) is recoded once, chunk by
    chunk, into a temporary file that the passes read instead.
    """

    def __init__(self, source: str | Path | bytes, name: str | None) -> None:
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._data: bytes | None = bytes(source)
            self._path: Path | None = None
            self.label = name if name is not None else "<bytes>"
        else:
            if isinstance(source, str) and ("\n" in source or "\r" in source):
                raise TypeError("read_firms takes a path or the file's bytes; pass CSV text as bytes "
                                "(text.encode()).")
            self._data, self._path = None, Path(source)
            self._path.open("rb").close()  # a missing or unreadable path fails here, as an OSError
            self.label = name if name is not None else str(source)
        #: bytes before the content (a UTF-8 byte-order mark)
        self.raw_start = 0
        #: ``utf-16``, ``utf-8`` (undecodable bytes replaced) or None (UTF-8 as it is)
        self.encoding: str | None = None
        #: offset of the header in the (recoded) content
        self.start = 0
        self._folder: tempfile.TemporaryDirectory | None = None
        self._recoded: dict[str, Path] = {}

    def close(self) -> None:
        """Remove the recoded copy, if one was made."""
        if self._folder is not None:
            self._folder.cleanup()
            self._folder, self._recoded = None, {}

    def _raw(self, offset: int) -> BinaryIO:
        raw: BinaryIO = io.BytesIO(self._data) if self._data is not None else open(self._path, "rb")  # noqa: SIM115
        raw.seek(offset)
        return raw

    def raw_head(self, size: int) -> bytes:
        """Return the first ``size`` bytes of the file as they are."""
        with self._raw(0) as raw:
            return raw.read(size)

    def _content(self) -> tuple[bytes | Path, int]:
        """Give the bytes or the file holding the content as UTF-8, and where the content starts in it."""
        if self.encoding is None:
            return (self._data if self._data is not None else self._path), self.raw_start
        if self.encoding not in self._recoded:
            if self._folder is None:
                self._folder = tempfile.TemporaryDirectory(prefix="gridwatch-firms-")
            target = Path(self._folder.name) / f"{self.encoding}.csv"
            decoder = codecs.getincrementaldecoder(self.encoding)(
                errors="replace" if self.encoding == "utf-8" else "strict")
            with self._raw(self.raw_start) as raw, target.open("wb") as out:
                while True:
                    data = raw.read(_CHUNK)
                    out.write(decoder.decode(data, final=not data).encode("utf-8"))
                    if not data:
                        break
            self._recoded[self.encoding] = target
        return self._recoded[self.encoding], 0

    def stream(self) -> BinaryIO:
        """Open the content from the header on (from its start until the header is located), as UTF-8."""
        where, offset = self._content()
        handle: BinaryIO = io.BytesIO(where) if isinstance(where, bytes) else open(where, "rb")  # noqa: SIM115
        handle.seek(offset + self.start)
        return handle

    def head(self, size: int) -> bytes:
        """Return the first ``size`` bytes of the content from the header on."""
        with self.stream() as stream:
            return stream.read(size)

    def lines(self, numbers: Sequence[int]) -> dict[int, str]:
        """Lines ``numbers`` (1-based from the header) as text without their line breaks.

        Line breaks are LF, CRLF or CR, as for the parser; undecodable bytes are replaced.
        """
        wanted = iter(sorted(set(numbers)))
        target = next(wanted, None)
        found: dict[int, str] = {}
        if target is None:
            return found
        with io.TextIOWrapper(self.stream(), encoding="utf-8", errors="replace", newline=None) as text:
            for number, line in enumerate(text, start=1):
                if number == target:
                    found[number] = line[:-1] if line.endswith("\n") else line
                    target = next(wanted, None)
                    if target is None:
                        break
        return found


def _check_text(source: _Source) -> None:
    """Drop a UTF-8 BOM, read UTF-16 (with BOM) as UTF-8, refuse what is not text."""
    label = source.label
    raw = source.raw_head(_SNIFF_BYTES)
    if raw.startswith(b"\xef\xbb\xbf"):
        source.raw_start = 3
    elif raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        source.encoding = "utf-16"
    try:
        head = source.head(_SNIFF_BYTES)
    except UnicodeDecodeError:
        raise ValidationError("{file} is not CSV text: it holds binary data.", file=label) from None
    if b"\x00" in head:
        raise ValidationError("{file} is not CSV text: it holds binary data.", file=label)
    start = head.lstrip()
    if start.startswith(b"<"):
        raise ValidationError("{file} is not CSV text: it looks like an HTML or XML page (it starts with {start!r}).",
                              file=label, start=start[:60].decode("utf-8", "replace").splitlines()[0])


def _line_end(data: bytes, start: int) -> int:
    """Position of the first line break (LF or CR) from ``start``, -1 when there is none."""
    newline = data.find(b"\n", start)
    cr = data.find(b"\r", start, newline if newline >= 0 else len(data))
    return cr if cr >= 0 else newline


def _locate_header(source: _Source) -> tuple[int, str | None, bool]:
    """Skip whitespace-only lines before the header.

    Returns how many were skipped, the header (None: the file is empty) and whether a line break follows it (else
    the file has no rows).

    Raises
    ------
    ValidationError
        The header does not end within the first :data:`_MAX_HEADER_BYTES` bytes, or is not UTF-8.
    """
    try:
        head = source.head(_MAX_HEADER_BYTES + 1)
    except UnicodeDecodeError:
        raise ValidationError("{file} is not CSV text: it holds binary data.", file=source.label) from None
    position, skipped = 0, 0
    while True:
        end = _line_end(head, position)
        if end < 0 and len(head) > _MAX_HEADER_BYTES:
            raise ValidationError(
                "{file} is not a FIRMS active-fire CSV: its header does not end within its first {limit} KB "
                "(a FIRMS header is one short line).", file=source.label, limit=_MAX_HEADER_BYTES // 1024)
        end = len(head) if end < 0 else end
        line = head[position:end]
        if line.strip():
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                raise ValidationError("{file} is not CSV text: its first line is not UTF-8.",
                                      file=source.label) from None
            source.start = position
            return skipped, text, end < len(head)
        if end >= len(head):
            return skipped, None, False
        position = end + (2 if head[end:end + 2] == b"\r\n" else 1)
        skipped += 1


# --------------------------------------------------------------------------
# the header
# --------------------------------------------------------------------------


def _split_fields(line: str, delimiter: str) -> list[str]:
    """Fields of one line; quoted fields are honoured only when the line holds a quote (and quotes make sense)."""
    if '"' in line:
        try:
            return next(csv.reader([line], delimiter=delimiter), [])
        except csv.Error:  # stray line breaks or NULs: not CSV quoting
            pass
    return line.split(delimiter)


def _sniff_delimiter(header: str) -> str:
    if "," in header:
        return ","
    for candidate in ("\t", ";"):
        if candidate in header:
            return candidate
    return ","


def _names_shown(names: list[str]) -> str:
    """Return the column names for an error message: the first :data:`_MAX_NAMES_SHOWN`, then an ellipsis."""
    if not names:
        return "none"
    return ", ".join(names[:_MAX_NAMES_SHOWN]) + (" …" if len(names) > _MAX_NAMES_SHOWN else "")


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
                "{found}.", file=label, missing=", ".join(missing), found=_names_shown([n for n in given if n]))
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
    """One batch of the parser's output: the needed columns and each row's line number."""

    table: pa.Table
    lines: np.ndarray  # int64, 1-based from the header
    quoted: bool


class _NotUTF8(Exception):
    """A chunk of the content is not valid UTF-8: the parse starts again on the content recoded."""


class _Parser:
    """One parse of the content, chunk by chunk: typed batches with line numbers.

    The content is read in chunks of about :data:`_BLOCK_SIZE` cut after a line
    break, each checked (no line of :data:`_LONG_LINE` bytes, UTF-8) and parsed
    on its own by ``pyarrow.csv`` on one thread (nothing reads ahead, so memory
    holds a few chunks whatever the file's size). Numeric columns are typed
    except ``as_text``, and in a chunk with quotes every column is text. The
    invalid-row handler sets aside blank lines, malformed lines (with their
    number, text and field count) and, in a chunk with quotes, lines whose
    quoted field held the delimiter (parsed again with :mod:`csv` and added to
    their batch). The handler numbers a chunk's lines from its first (the
    header is line 1 of the first), so each chunk's rows take the numbers of its
    lines the handler did not.
    """

    def __init__(self, source: _Source, header: _Header, *, as_text: set[str]) -> None:
        self.source, self.header, self.as_text = source, header, as_text
        self.skipped: list[int] = []
        self.rescued: list[tuple[int, list[str]]] = []
        self.malformed: list[tuple[int, str, int]] = []
        self.blank = 0
        #: malformed and blank lines
        self.unusable = 0
        #: the handler stopped the parse: the file is mostly unusable lines
        self.garbage = False
        self._before = 0  # lines before the chunk being parsed
        self._quoted = False  # the chunk being parsed holds a quote
        self._blank_chars = header.delimiter + ' \t"'

    def _on_invalid(self, row: Any) -> str:
        text, number = row.text, self._before + row.number
        self.skipped.append(number)
        if not text.strip(self._blank_chars):
            self.blank += 1
        elif (self._quoted and '"' in text
              and len(fields := _split_fields(text, self.header.delimiter)) == len(self.header.names)):
            self.rescued.append((number, fields))  # a quoted field held the delimiter
            return "skip"
        else:
            self.malformed.append((number, text, row.actual_columns))
        self.unusable += 1
        if self.unusable > MAX_UNUSABLE_ROWS and 2 * self.unusable > number:
            self.garbage = True
            return "error"
        return "skip"

    def _chunks(self, stop: threading.Event) -> Iterator[bytearray]:
        """Yield the content in chunks of about :data:`_BLOCK_SIZE`, each cut after a line break and checked.

        A chunk ends after its last LF, or (a file with CR line breaks) its last CR but one that ends the data read,
        which may be half of a CRLF; data without a line break is read on, up to a line of twice
        :data:`_LONG_LINE`.

        Raises
        ------
        ValidationError
            A line of more than :data:`_LONG_LINE` bytes (a stretch that long without a line break, looked for
            aligned, so any line of twice that length is found).
        _NotUTF8
            A chunk that is not UTF-8, in content read as it is.
        """
        rest = b""
        check_utf8 = self.source.encoding is None
        with self.source.stream() as stream:
            while not stop.is_set():
                buffer = bytearray(rest)
                buffer += stream.read(_BLOCK_SIZE)
                end = len(buffer) == len(rest)  # what is left ends without a line break
                if end and not buffer:
                    return
                cut = len(buffer) if end else (buffer.rfind(b"\n") + 1
                                               or buffer.rfind(b"\r", 0, len(buffer) - 1) + 1)
                if (not cut and len(buffer) > 2 * _LONG_LINE) or any(
                        buffer.find(b"\n", at, at + _LONG_LINE) < 0 and buffer.find(b"\r", at, at + _LONG_LINE) < 0
                        for at in range(0, cut - _LONG_LINE + 1, _LONG_LINE)):
                    raise ValidationError("{file} is not a FIRMS active-fire CSV: it has a line of more than {limit} "
                                          "KB (FIRMS lines are about 100 bytes).", file=self.source.label,
                                          limit=_LONG_LINE // 1024)
                if not cut:
                    rest = bytes(buffer)
                    continue
                rest = bytes(buffer[cut:])
                del buffer[cut:]
                if check_utf8 and not buffer.isascii():  # FIRMS files are ASCII: the check is rarely needed
                    try:
                        buffer.decode("utf-8")
                    except UnicodeDecodeError:
                        raise _NotUTF8 from None
                yield buffer
                if end:
                    return

    def batches(self) -> Iterator[_Parsed]:
        """Parse the content; yield each chunk's rows.

        The parse runs on its own thread, a chunk ahead of the caller (who checks and converts the chunk before),
        so the two cores share the work; at most two parsed chunks wait.
        """
        header = self.header
        include = list(dict.fromkeys(header.source.values()))
        floats = {header.source[c] for c in _FLOAT_COLUMNS if c in header.source}
        # text columns arrive dictionary-encoded from the parser (few distinct values: dates, satellites, ...);
        # a chunk with quotes is all plain text, checked value by value, since rescued lines are added as text
        dictionary = pa.dictionary(pa.int32(), pa.string())
        typed = {n: pa.float64() if n in floats and n not in self.as_text else pa.string() if n in floats
                 else dictionary for n in include}
        parse_options = pacsv.ParseOptions(delimiter=header.delimiter, quote_char=False, ignore_empty_lines=False,
                                           invalid_row_handler=self._on_invalid)
        convert = {quoted: pacsv.ConvertOptions(
            column_types={n: pa.string() for n in include} if quoted else typed, include_columns=include,
            null_values=[""], strings_can_be_null=False, quoted_strings_can_be_null=False) for quoted in (False, True)}
        ready: queue.Queue[_Parsed | BaseException | None] = queue.Queue(maxsize=2)
        stop = threading.Event()

        def parse() -> None:
            try:
                first = 1  # the number of the chunk's first line
                for chunk in self._chunks(stop):
                    self._before, self._quoted = first - 1, b'"' in chunk
                    marked = len(self.skipped)
                    table = pacsv.read_csv(
                        pa.BufferReader(pa.py_buffer(chunk)),  # arrow copies what it keeps
                        read_options=pacsv.ReadOptions(use_threads=False, column_names=header.names,
                                                       skip_rows=1 if first == 1 else 0,
                                                       block_size=len(chunk) + 1),
                        parse_options=parse_options, convert_options=convert[self._quoted])
                    # every line of the chunk is a row or went to the handler (the header too, in the first)
                    count = table.num_rows + len(self.skipped) - marked + (first == 1)
                    lines = np.arange(max(first, 2), first + count, dtype=np.int64)
                    if len(self.skipped) > marked:
                        lines = lines[~np.isin(lines, np.asarray(self.skipped[marked:], dtype=np.int64))]
                    first += count
                    ready.put(self._numbered(table, lines, include))
                ready.put(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                ready.put(exc)

        worker = threading.Thread(target=parse, name="firms-parse", daemon=True)
        worker.start()
        try:
            while (item := ready.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while worker.is_alive():  # let a parse waiting to hand over a chunk see the stop
                try:
                    ready.get(timeout=0.05)
                except queue.Empty:
                    pass
            worker.join()

    def _numbered(self, table: pa.Table, lines: np.ndarray, include: list[str]) -> _Parsed:
        """Give the chunk's rows their line numbers; add its rescued lines, in line order."""
        if len(lines) != table.num_rows:  # pragma: no cover - pyarrow changed how it counts lines
            raise RuntimeError(f"pyarrow parsed {table.num_rows} rows from {len(lines)} lines")
        if self.rescued:
            rescued, self.rescued = self.rescued, []
            position = self.header.position
            extra = pa.table({c: pa.array([f[position[c]] for _, f in rescued], pa.string()) for c in include})
            table = pa.concat_tables([table, extra.select(table.column_names)])
            lines = np.concatenate([lines, np.array([number for number, _ in rescued], dtype=np.int64)])
            order = np.argsort(lines, kind="stable")
            table, lines = table.take(pa.array(order)), lines[order]
        return _Parsed(table=table, lines=lines, quoted=self._quoted)


def _parse(source: _Source, header: _Header, warnings: list[str], offset: int, limits: _Limits) -> _Collected:
    """Parse and check the content batch by batch; a column holding text is parsed again as text.

    A value that is not a number stops arrow's typed conversion; the error names the
    column, which the next run reads as text (to be checked row by row). Content
    that is not UTF-8 is parsed again with undecodable bytes replaced, with a warning.

    Raises
    ------
    ValidationError
        The content is not CSV (a line of more than :data:`_LONG_LINE` bytes, binary data), or its unusable lines
        pass :data:`MAX_UNUSABLE_ROWS` and outnumber its good rows.
    """
    label = source.label
    floats = [header.source[c] for c in _FLOAT_COLUMNS if c in header.source]
    as_text: set[str] = set()
    for _ in range(len(floats) + 3):
        parser = _Parser(source, header, as_text=as_text)
        collected = _Collected(header, offset, limits)
        try:
            for parsed in parser.batches():
                collected.add(_convert(parsed, header, offset, limits))
                collected.check(label, parser)
            collected.check(label, parser, final=True)
            return collected.finish(source, parser)
        except _NotUTF8:
            source.encoding = "utf-8"
            warnings.append(_W_UTF8)
        except UnicodeDecodeError:
            raise ValidationError("{file} is not CSV text: it holds binary data.", file=label) from None
        except pa.ArrowInvalid as exc:
            if parser.garbage:
                raise collected.refusal(label, parser) from None
            text = str(exc)
            column = re.match(r"In CSV column #(\d+)", text)
            name = header.names[int(column[1])] if column and int(column[1]) < len(header.names) else None
            if "conversion error" in text and name in floats and name not in as_text:
                as_text.add(name)
            elif "conversion error" in text and not as_text.issuperset(floats):
                as_text.update(floats)
            else:
                raise ValidationError("{file} could not be read as CSV: {error}", file=label, error=text) from None
    raise ValidationError("{file} could not be read as CSV: {error}", file=label,  # pragma: no cover
                          error="the parser kept failing")


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
    """Return a ``str`` Series of ``entries[codes]`` (None gives a missing value)."""
    return _text_array(entries, codes).to_pandas()


def _text_array(entries: Sequence[str | None], codes: np.ndarray) -> pa.Array:
    """Return an arrow array of ``entries[codes]`` (None gives a missing value).

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
    return array


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


def read_firms(source: str | Path | bytes, /, *, name: str | None = None, now: dt.datetime | None = None,
               earliest: dt.date = EARLIEST_ACQUISITION) -> LayerRead:
    """Read a NASA FIRMS active-fire CSV file (MODIS or VIIRS, NRT or archive) into canonical columns.

    Parameters
    ----------
    source : path or bytes
        The file's path (a ``str`` is a path), or the file's content as bytes.
    name : str, optional
        The name to report the file under (default: the path as given, or ``"<bytes>"``).
    now : datetime, optional
        The moment of reading (naive means UTC; default: this machine's clock). A row acquired later than
        ``now`` plus :data:`FUTURE_TOLERANCE` is rejected (``acquired_in_future``); the ingest passes its clock.
    earliest : date, optional
        The first day of the satellite record; a row acquired before it is rejected (``acquired_before_record``).

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
        The file is not CSV text (binary data, an HTML page, a header or a line
        longer than the reader takes), lacks a required column
        (:data:`REQUIRED_COLUMNS` and ``bright_ti4`` or ``brightness``), or is
        mostly lines that cannot be used (more than :data:`MAX_UNUSABLE_ROWS`,
        outnumbering the good rows).
    OSError
        The path cannot be read.

    Notes
    -----
    An empty file, or one with only a header, is not an error: it has no rows.
    The file is read as a stream, block by block, and never held whole: what a
    read holds is one block and the rows it accepts.
    """
    if now is None:
        now = dt.datetime.now(dt.UTC)
    if now.tzinfo is not None:
        now = now.astimezone(dt.UTC).replace(tzinfo=None)
    limits = _Limits(now=now, earliest=earliest)
    source = _Source(source, name)
    try:
        return _read(source, limits)
    finally:
        source.close()


@dataclass(frozen=True)
class _Limits:
    """The acquisition times a reading accepts: from ``earliest`` (a date) to ``now`` (naive UTC) plus tolerance."""

    now: dt.datetime
    earliest: dt.date

    @property
    def first_day(self) -> int:
        """Days since 1970 of :attr:`earliest`."""
        return self.earliest.toordinal() - _EPOCH_ORDINAL

    @property
    def last_second(self) -> int:
        """Seconds since 1970 of the latest acquisition accepted."""
        return int((self.now + FUTURE_TOLERANCE - dt.datetime(1970, 1, 1)).total_seconds())


def _date_checks(day_lut: np.ndarray, date_codes: np.ndarray, second_lut: np.ndarray, time_codes: np.ndarray,
                 limits: _Limits) -> list[tuple[str, np.ndarray | None]]:
    """Rows acquired after ``now`` (plus tolerance) or before the record; judged on distinct dates first (cheap)."""
    valid = day_lut >= 0
    early = valid & (day_lut < limits.first_day)
    last = limits.last_second
    late = valid & (day_lut * 86_400 > last - 86_400)  # dates on which some time of day may lie beyond the limit
    future = None
    if late.any():
        rows = late[date_codes]
        seconds = day_lut[date_codes] * 86_400 + np.maximum(second_lut[time_codes], 0)
        future = rows & (seconds > last) & (second_lut[time_codes] >= 0)
    return [("acquired_in_future", future), ("acquired_before_record", early[date_codes] if early.any() else None)]


def _read(source: _Source, limits: _Limits) -> LayerRead:
    label = source.label
    warnings: list[str] = []
    _check_text(source)
    offset, header_text, rows = _locate_header(source)
    if header_text is None:
        return _empty_result(label, [_W_EMPTY])
    header = _Header(header_text, label, warnings)
    if not rows:
        return _empty_result(label, warnings)
    return _parse(source, header, warnings, offset, limits).result(label, warnings)


@dataclass
class _Rejects:
    """Rows of one batch that fail a check: line, reason code and what explaining them takes."""

    lines: np.ndarray
    codes: np.ndarray
    lat: np.ndarray
    lng: np.ndarray
    lat_empty: np.ndarray
    lat_bad: np.ndarray
    is_modis: np.ndarray
    #: both coordinates empty: a line of bare separators (a blank line) unless its text says otherwise
    maybe_blank: np.ndarray


@dataclass
class _Part:
    """One batch checked and converted: its accepted rows, its rejected ones, and counts for the warnings."""

    columns: dict[str, Any]
    rows: int
    rejects: _Rejects
    not_numbers: dict[str, int]
    bad_types: int
    mismatched: int


class _Collected:
    """The batches of one parse: accepted rows, rejected rows, counts; refuses a file of mostly unusable lines."""

    def __init__(self, header: _Header, offset: int, limits: _Limits) -> None:
        self.header, self.offset, self.limits = header, offset, limits
        self.parts: list[_Part] = []
        self.accepted = 0
        self.rejected = 0
        self.rows: pd.DataFrame | None = None
        self.rejected_rows: pd.DataFrame | None = None
        self.blank = 0

    def add(self, part: _Part) -> None:
        self.parts.append(part)
        self.accepted += part.rows
        self.rejected += len(part.rejects.lines)

    def check(self, label: str, parser: _Parser, *, final: bool = False) -> None:
        """Refuse the file when its unusable lines pass :data:`MAX_UNUSABLE_ROWS` and outnumber its good rows."""
        if parser.garbage or (self.rejected + parser.unusable > MAX_UNUSABLE_ROWS
                              and self.rejected + parser.unusable > self.accepted):
            raise self.refusal(label, parser)

    def refusal(self, label: str, parser: _Parser) -> ValidationError:
        bad = self.rejected + parser.unusable
        return ValidationError(
            "{file} is not a FIRMS active-fire CSV: {count} of its first {lines} lines cannot be used, more than "
            "{limit} and more than the good ones; nothing was read from it.", file=label, count=bad,
            lines=bad + self.accepted, limit=MAX_UNUSABLE_ROWS)

    def finish(self, source: _Source, parser: _Parser) -> _Collected:
        """Quote and explain the rejected rows (their lines read again), tell blank lines apart, combine the rows."""
        header, offset = self.header, self.offset
        rejects = [p.rejects for p in self.parts if len(p.rejects.lines)]
        texts = source.lines(np.concatenate([r.lines for r in rejects]).tolist()) if rejects else {}
        line: list[int] = []
        code: list[str] = []
        message: list[str] = []
        raw: list[str] = []
        for number, text, found in parser.malformed:
            line.append(number + offset)
            code.append("malformed")
            message.append(_MESSAGES["malformed"][0].format(found=found, expected=len(header.names)))
            raw.append(text)
        blank = parser.blank
        blank_chars = header.delimiter + ' \t"'
        for r in rejects:
            for j in range(len(r.lines)):
                number = int(r.lines[j])
                text = texts.get(number, "")
                if r.maybe_blank[j] and not text.strip(blank_chars):
                    blank += 1
                    continue
                why = REJECT_REASONS[r.codes[j]]
                line.append(number + offset)
                code.append(why)
                message.append(_explain(why, _split_fields(text, header.delimiter), header, float(r.lat[j]),
                                        float(r.lng[j]), bool(r.lat_empty[j]), bool(r.lat_bad[j]),
                                        bool(r.is_modis[j]), self.limits))
                raw.append(text)
        self.blank = blank
        self.rejected_rows = rejected_frame(line, code, message, raw) if line else empty_rejected()
        parts = [p.columns for p in self.parts if p.rows]
        self.rows = _combine(parts) if parts else _empty_frame()
        return self

    def result(self, label: str, warnings: list[str]) -> LayerRead:
        """Return the read, with the warnings in the order the checks run."""
        for canonical in _FLOAT_COLUMNS[2:]:
            count = sum(p.not_numbers.get(canonical, 0) for p in self.parts)
            if count:
                warnings.append(_W_NUMBER.format(count=count, column=self.header.source[canonical]))
        if self.blank:
            warnings.append(_W_BLANK.format(count=self.blank))
        if bad_types := sum(p.bad_types for p in self.parts):
            warnings.append(_W_TYPE.format(count=bad_types))
        if mismatched := sum(p.mismatched for p in self.parts):
            warnings.append(_W_INSTRUMENT.format(count=mismatched))
        rows, rejected = self.rows, self.rejected_rows
        return LayerRead(source=label, frame=rows, rejected=rejected, read=len(rows) + len(rejected),
                         warnings=warnings)


def _empty_frame() -> pd.DataFrame:
    none = np.zeros(0, dtype=np.int64)
    text = _text_column((None, None), none)
    return _assemble({
        **{c: none.astype(float) for c in _FLOAT_COLUMNS},
        "line": none, "acq_time": pd.Series(none.view("M8[ns]")).dt.tz_localize("UTC"), "satellite": text,
        "instrument": text, "confidence": _int_column(none, none), "confidence_class": text, "daynight": text,
        "version": text, "fire_type": _int_column(none, none), "source": text,
    })


def _convert(parsed: _Parsed, header: _Header, offset: int, limits: _Limits) -> _Part:
    """Check and convert one batch's parsed columns (vectorised); set aside its rejected rows."""
    table, lines = parsed.table, parsed.lines
    n = table.num_rows

    def col(canonical: str) -> pa.ChunkedArray | None:
        name = header.source.get(canonical)
        return None if name is None else table.column(name)

    lat, lat_empty, lat_bad = _floats(col("latitude"), parsed.quoted)
    lng, lng_empty, lng_bad = _floats(col("longitude"), parsed.quoted)
    measures: dict[str, np.ndarray] = {}
    not_numbers: dict[str, int] = {}
    for canonical in _FLOAT_COLUMNS[2:]:
        column = col(canonical)
        if column is None:
            measures[canonical] = np.full(n, np.nan)
            continue
        measures[canonical], _, bad = _floats(column, parsed.quoted)
        if bad.any():
            not_numbers[canonical] = int(bad.sum())

    dates, date_codes = _factor(col("acq_date"))
    times, time_codes = _factor(col("acq_time"))
    sats, sat_codes = _factor(col("satellite"))
    confs, conf_codes = _factor(col("confidence"))
    day_lut, second_lut = _lookup(dates, _parse_date), _lookup(times, _parse_time)
    sat_lut = _lookup(sats, _parse_satellite)
    modis_lut = (sat_lut >= 0) & (sat_lut <= 1)
    known = sat_lut >= 0
    # one instrument in the whole batch (the usual case) spares the per-row choices
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
        *_date_checks(day_lut, date_codes, second_lut, time_codes, limits),
        ("unknown_satellite", _rows_below_zero(sat_lut, sat_codes)),
        ("bad_confidence", bad_confidence),
        ("bad_daynight", None if dn_lut is None else _rows_below_zero(dn_lut, dn_codes)),
    ]
    reason = np.zeros(n, dtype=np.int8)
    for code, mask in reversed(checks):
        if mask is not None:
            reason[mask] = _CODE[code]

    # Lines of bare separators parse as rows with empty coordinates: their text tells them from rejects later.
    bad = np.flatnonzero(reason > 0)
    rejects = _Rejects(lines=lines[bad], codes=reason[bad], lat=lat[bad], lng=lng[bad], lat_empty=lat_empty[bad],
                       lat_bad=lat_bad[bad], is_modis=is_modis[bad], maybe_blank=(lat_empty & lng_empty)[bad])

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
        confidence_class = _text_array(class_entries, conf_rows)
        confidence = ((modis_value_lut[conf_rows], np.zeros(m, dtype=bool)) if all_modis
                      else (np.zeros(m, dtype=np.int64), np.ones(m, dtype=bool)))
    else:
        classes = np.where(rows_modis, modis_class_lut[conf_rows], viirs_class_lut[conf_rows])
        confidence_class = _text_array(CONFIDENCE_CLASSES, classes)
        confidence = (np.where(rows_modis, modis_value_lut[conf_rows], 0), ~rows_modis)
    sat_rows = sel(sat_codes)
    fire_type, bad_types = _fire_type(col("fire_type"), sel, m)
    # the batch's columns, combined with the other batches' at the end: numpy arrays, arrow text arrays,
    # (values, missing) pairs of integers, and acq_time as seconds since 1970
    columns: dict[str, Any] = {
        "line": sel(lines) + offset,
        "acq_time": day_lut[sel(date_codes)] * 86_400 + second_lut[sel(time_codes)],
        "satellite": _text_array([SATELLITE_NAMES[s] if s >= 0 else None for s in sat_lut], sat_rows),
        "instrument": _text_array([INSTRUMENTS[SATELLITE_NAMES[s]] if s >= 0 else None for s in sat_lut], sat_rows),
        "confidence": confidence,
        "confidence_class": confidence_class,
        "daynight": (_text_array([("D", "N")[v] if v >= 0 else None for v in dn_lut], sel(dn_codes))
                     if dn_lut is not None else _text_array((None,), np.zeros(m, dtype=np.int32))),
        "version": _version(col("version"), sel, m),
        "fire_type": fire_type,
        "source": _text_array((SOURCE,), np.zeros(m, dtype=np.int32)),
        "latitude": sel(lat), "longitude": sel(lng), **{c: sel(v) for c, v in measures.items()},
    }
    mismatched = _mismatched_instruments(col("instrument"), sel, sat_lut, sat_rows)
    return _Part(columns=columns, rows=m, rejects=rejects, not_numbers=not_numbers, bad_types=bad_types,
                 mismatched=mismatched)


def _combine(parts: list[dict[str, Any]]) -> pd.DataFrame:
    """Build the output frame from the columns of the batches (each column combined once)."""
    columns: dict[str, Any] = {}
    for name in COLUMNS:
        pieces = [p[name] for p in parts]
        first = pieces[0]
        if isinstance(first, pa.Array):
            columns[name] = pa.chunked_array(pieces).to_pandas()
        elif isinstance(first, tuple):
            columns[name] = _int_column(np.concatenate([v for v, _ in pieces]), np.concatenate([m for _, m in pieces]))
        else:
            columns[name] = np.concatenate(pieces) if len(pieces) > 1 else first
    seconds = np.asarray(columns["acq_time"], dtype=np.int64)
    columns["acq_time"] = pd.Series((seconds * _NS_PER_S).view("M8[ns]"), copy=False).dt.tz_localize("UTC")
    return _assemble(columns)


def _version(column: pa.ChunkedArray | None, sel: Callable[[np.ndarray], np.ndarray], m: int) -> pa.Array:
    if column is None:
        return _text_array((None,), np.zeros(m, dtype=np.int32))
    uniques, codes = _factor(column)
    return _text_array([_clean(u) or None for u in uniques], sel(codes))


def _fire_type(column: pa.ChunkedArray | None, sel: Callable[[np.ndarray], np.ndarray],
               m: int) -> tuple[tuple[np.ndarray, np.ndarray], int]:
    """Return the ``type`` of the accepted rows (values, missing), and how many are not 0-3 (left empty)."""
    if column is None:
        return (np.zeros(m, dtype=np.int64), np.ones(m, dtype=bool)), 0
    uniques, codes = _factor(column)
    values = _lookup(uniques, _parse_fire_type)[sel(codes)]
    return (np.maximum(values, 0), values < 0), int((values == -2).sum())


def _mismatched_instruments(column: pa.ChunkedArray | None, sel: Callable[[np.ndarray], np.ndarray],
                            sat_lut: np.ndarray, sat_rows: np.ndarray) -> int:
    """Count accepted rows whose ``instrument`` column contradicts their satellite (the satellite decides)."""
    if column is None or not len(sat_rows):
        return 0
    uniques, codes = _factor(column)
    kinds = ("", "MODIS", "VIIRS")
    given = np.array([kinds.index(g) if (g := _clean(u).upper()) in kinds else 3 for u in uniques], dtype=np.int8)
    derived = np.where((sat_lut >= 0) & (sat_lut <= 1), 1, 2).astype(np.int8)
    used = np.unique(derived[sat_lut >= 0])  # distinct values only: cheap
    if len(used) == 1 and set(given.tolist()) <= {0, int(used[0])}:
        return 0  # one instrument, and the column agrees wherever it is filled
    given_rows = given[sel(codes)]
    return int(((given_rows != 0) & (given_rows != derived[sat_rows])).sum())


def _explain(code: str, fields: list[str], header: _Header, lat: float, lng: float, lat_empty: bool,
             lat_bad: bool, is_modis: bool, limits: _Limits) -> str:
    """Explain a rejected row in English, quoting the values of its line."""
    templates = _MESSAGES[code]
    if code == "acquired_in_future":
        return templates[0].format(date=header.field(fields, "acq_date"), time=header.field(fields, "acq_time"),
                                   now=limits.now.strftime("%Y-%m-%d %H:%M"),
                                   minutes=int(FUTURE_TOLERANCE.total_seconds() // 60))
    if code == "acquired_before_record":
        return templates[0].format(value=header.field(fields, "acq_date"), earliest=limits.earliest.isoformat())
    if code == "coordinate_missing":
        return templates[0].format(column="latitude" if lat_empty else "longitude")
    if code == "coordinate_not_number":
        column = "latitude" if lat_bad or not np.isfinite(lat) else "longitude"
        return templates[0].format(column=column, value=header.field(fields, column))
    if code == "coordinate_out_of_range":
        swapped = abs(lat) > 90 and abs(lng) <= 90
        latitude, longitude = header.field(fields, "latitude"), header.field(fields, "longitude")
        return templates[1 if swapped else 0].format(latitude=latitude, longitude=longitude)
    column = {"bad_date": "acq_date", "bad_time": "acq_time", "unknown_satellite": "satellite",
              "bad_confidence": "confidence", "bad_daynight": "daynight"}[code]
    template = templates[1 if code == "bad_confidence" and not is_modis else 0]
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
        """Read one FIRMS CSV file; see :func:`read_firms` (the one option is ``now``, the moment of reading)."""
        now = options.pop("now", None)
        if options:
            raise TypeError(f"the fire_points layer takes no options but now (got {', '.join(sorted(options))})")
        return read_firms(source, name=name, now=now)
