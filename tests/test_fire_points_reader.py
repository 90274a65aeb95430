"""The NASA FIRMS CSV reader: the real samples, their variants, bad rows and round trips of random rows."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
import string
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridwatch.errors import ValidationError
from layers.base import REJECTED_COLUMNS, Layer, LayerRead
from layers.fire_points import (
    _MESSAGES,
    COLUMNS,
    CONFIDENCE_CLASSES,
    FIRE_TYPE_STATIC,
    REJECT_REASONS,
    SATELLITES,
    FirePointsLayer,
    read_firms,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIRES = SHARED / "data" / "fires"
FIRE_FILES = sorted(FIRES.glob("*.csv")) if FIRES.is_dir() else []
needs_fires = pytest.mark.skipif(
    not FIRE_FILES, reason=f"{FIRES} (real NASA FIRMS samples, see ../shared/data/SOURCES.md) is not present")

MODIS_FILE = FIRES / "modis_c61_nrt_global24h_2022-02-26_27_henan_bbox.csv"
SNPP_FILE = FIRES / "viirs_snpp_fire_nrt_2020-10-02_format_sample_300rows.csv"
NOAA20_FILE = FIRES / "viirs_noaa20_fire_nrt_2020-10-02_format_sample_300rows.csv"

UTC = dt.UTC
DTYPES = {
    "line": "int64", "latitude": "float64", "longitude": "float64", "acq_time": "datetime64[ns, UTC]",
    "satellite": "str", "instrument": "str", "confidence": "Int64", "confidence_class": "str",
    "brightness": "float64", "bright_t31": "float64", "frp": "float64", "scan": "float64", "track": "float64",
    "daynight": "str", "version": "str", "fire_type": "Int64", "source": "str",
}
#: the codes FIRMS writes, mapped independently of the reader's table
EXPECTED_SATELLITE = {"T": "Terra", "A": "Aqua", "N": "S-NPP", "1": "NOAA-20", "N20": "NOAA-20", "2": "NOAA-21",
                      "N21": "NOAA-21", "Terra": "Terra", "Aqua": "Aqua"}
LETTER_CLASS = {"l": "low", "n": "nominal", "h": "high", "low": "low", "nominal": "nominal", "high": "high"}


# -- helpers ------------------------------------------------------------------------------------


def assert_schema(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == list(COLUMNS)
    got = {c: str(frame[c].dtype) for c in frame.columns}
    assert got == DTYPES
    assert isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0


def assert_rejected_schema(rejected: pd.DataFrame) -> None:
    assert list(rejected.columns) == list(REJECTED_COLUMNS)
    assert str(rejected["line"].dtype) == "int64"
    assert all(str(rejected[c].dtype) == "str" for c in ("reason", "message", "raw"))


def data_lines(path: Path) -> int:
    """Count a file's data rows by hand: its lines minus the header."""
    return len(path.read_bytes().splitlines()) - 1


def reference(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows read with the csv module (the independent reference)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def expected_time(date: str, hhmm: str) -> pd.Timestamp:
    return pd.Timestamp(dt.datetime.strptime(f"{date} {hhmm.zfill(4)}", "%Y-%m-%d %H%M").replace(tzinfo=UTC))


def modis_class(value: int) -> str:
    return "low" if value < 30 else "nominal" if value < 80 else "high"


def rewrite(path: Path, out: Path, *, header=None, row=None, newline: str = "\n", bom: bool = False) -> Path:
    """Write a variant of a real file: ``header(list) -> list`` and ``row(dict) -> dict`` change it."""
    names, rows = reference(path)
    new_names = header(list(names)) if header else names
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=newline)
    writer.writerow(new_names)
    for i, r in enumerate(rows):
        r = row(dict(r), i) if row else r
        writer.writerow([r[n] for n in names] + [r[n] for n in new_names[len(names):]])
    out.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buffer.getvalue().encode("utf-8"))
    return out


def same_detections(a: pd.DataFrame, b: pd.DataFrame, *, ignore: tuple[str, ...] = ()) -> None:
    cols = [c for c in COLUMNS if c not in ignore]
    pd.testing.assert_frame_equal(a[cols], b[cols])


# -- the real samples ---------------------------------------------------------------------------


@needs_fires
@pytest.mark.parametrize("path", FIRE_FILES or [pytest.param(None, marks=needs_fires)],
                         ids=lambda p: p.name if p else "none")
def test_every_real_file_reads_whole_and_exact(path: Path):
    result = read_firms(path)
    rows = data_lines(path)
    assert isinstance(result, LayerRead)
    assert (result.read, len(result.frame), len(result.rejected)) == (rows, rows, 0)
    assert result.warnings == []
    assert result.source == str(path)
    assert_schema(result.frame)
    assert_rejected_schema(result.rejected)
    frame = result.frame
    np.testing.assert_array_equal(frame.line.to_numpy(), np.arange(2, rows + 2))

    # every value against an independent csv-module reading
    names, ref = reference(path)
    bright = "bright_ti4" if "bright_ti4" in names else "brightness"
    t31 = "bright_ti5" if "bright_ti5" in names else "bright_t31"
    for column, source in (("latitude", "latitude"), ("longitude", "longitude"), ("brightness", bright),
                           ("bright_t31", t31), ("frp", "frp"), ("scan", "scan"), ("track", "track")):
        np.testing.assert_array_equal(frame[column].to_numpy(), [float(r[source]) for r in ref], err_msg=column)
    assert frame.acq_time.tolist() == [expected_time(r["acq_date"], r["acq_time"]) for r in ref]
    assert frame.satellite.tolist() == [EXPECTED_SATELLITE[r["satellite"]] for r in ref]
    assert frame.daynight.tolist() == [r["daynight"] for r in ref]
    assert frame.version.tolist() == [r["version"] for r in ref]
    assert frame.source.eq("FIRMS").all()
    assert frame.fire_type.isna().all()  # NRT files have no type column
    if path.name.startswith("modis"):
        assert frame.instrument.eq("MODIS").all()
        assert frame.confidence.tolist() == [int(r["confidence"]) for r in ref]
        assert frame.confidence_class.tolist() == [modis_class(int(r["confidence"])) for r in ref]
    else:
        assert frame.instrument.eq("VIIRS").all()
        assert frame.confidence.isna().all()
        assert frame.confidence_class.tolist() == [LETTER_CLASS[r["confidence"]] for r in ref]


@needs_fires
def test_viirs_samples_map_satellites_and_both_brightness_namings():
    snpp, noaa20 = read_firms(SNPP_FILE).frame, read_firms(NOAA20_FILE).frame
    assert set(snpp.satellite) == {"S-NPP"} and set(noaa20.satellite) == {"NOAA-20"}
    # S-NPP names them bright_ti4/bright_ti5, NOAA-20 brightness/bright_t31: both land in brightness/bright_t31
    assert reference(SNPP_FILE)[0][2] == "bright_ti4" and reference(NOAA20_FILE)[0][2] == "brightness"
    assert snpp.loc[0, "brightness"] == 317.0 and snpp.loc[0, "bright_t31"] == 294.0
    assert noaa20.loc[0, "brightness"] == 305.3 and noaa20.loc[0, "bright_t31"] == 288.7


@needs_fires
def test_modis_confidence_is_an_integer_and_classes_follow_the_firms_thresholds():
    frame = read_firms(FIRES / "modis_c61_nrt_global7d_2022-05-28_2022-06-04_FULL.csv").frame
    conf = frame.confidence.to_numpy(dtype=np.int64)
    assert conf.min() >= 0 and conf.max() <= 100
    cls = frame.confidence_class.to_numpy()
    assert set(cls[conf < 30]) == {"low"}
    assert set(cls[(conf >= 30) & (conf < 80)]) == {"nominal"}
    assert set(cls[conf >= 80]) == {"high"}
    # the boundaries themselves
    for value, expected in ((29, "low"), (30, "nominal"), (79, "nominal"), (80, "high")):
        if (conf == value).any():
            assert set(cls[conf == value]) == {expected}


@needs_fires
def test_a_row_checked_by_hand():
    # line 2 of the file: 36.98998,117.61596,301.54,1.34,1.15,2022-02-26,0238,T,48,6.1NRT,288.6,4.52,D
    assert MODIS_FILE.read_text().splitlines()[1] == \
        "36.98998,117.61596,301.54,1.34,1.15,2022-02-26,0238,T,48,6.1NRT,288.6,4.52,D"
    row = read_firms(MODIS_FILE).frame.iloc[0]
    assert row.line == 2
    assert (row.latitude, row.longitude) == (36.98998, 117.61596)
    assert row.acq_time == pd.Timestamp("2022-02-26 02:38", tz="UTC")
    assert (row.satellite, row.instrument, row.confidence, row.confidence_class) == ("Terra", "MODIS", 48, "nominal")
    assert (row.brightness, row.bright_t31, row.frp, row.scan, row.track) == (301.54, 288.6, 4.52, 1.34, 1.15)
    assert (row.daynight, row.version, row.source) == ("D", "6.1NRT", "FIRMS")
    assert pd.isna(row.fire_type)
    # and one VIIRS row: -6.89862,-37.45492,317,0.52,0.5,2020-10-02,0318,N,VIIRS,n,2.0NRT,294,2,N
    viirs = read_firms(SNPP_FILE).frame.iloc[0]
    assert viirs.acq_time == pd.Timestamp("2020-10-02 03:18", tz="UTC")
    assert (viirs.satellite, viirs.instrument, viirs.confidence_class) == ("S-NPP", "VIIRS", "nominal")
    assert pd.isna(viirs.confidence)


@needs_fires
def test_bytes_and_a_name_read_like_the_path():
    by_path = read_firms(MODIS_FILE)
    by_bytes = read_firms(MODIS_FILE.read_bytes(), name="upload.csv")
    assert by_bytes.source == "upload.csv" and read_firms(MODIS_FILE.read_bytes()).source == "<bytes>"
    same_detections(by_path.frame, by_bytes.frame)
    assert read_firms(str(MODIS_FILE)).read == by_path.read


# -- variants of the real files -----------------------------------------------------------------


@needs_fires
@pytest.mark.parametrize("sample", [MODIS_FILE, SNPP_FILE, NOAA20_FILE], ids=lambda p: p.name[:12])
def test_format_variants_read_the_same(sample: Path, tmp_path: Path):
    base = read_firms(sample).frame

    def us_date(r, i):
        y, m, d = r["acq_date"].split("-")
        return {**r, "acq_date": f"{int(m)}/{int(d)}/{y}"}

    variants = {
        "no_leading_zeros": rewrite(sample, tmp_path / "a.csv",
                                    row=lambda r, i: {**r, "acq_time": str(int(r["acq_time"]))}),
        "colon_time": rewrite(sample, tmp_path / "b.csv",
                              row=lambda r, i: {**r, "acq_time": f"{r['acq_time'][:2]}:{r['acq_time'][2:]}"}),
        "us_dates": rewrite(sample, tmp_path / "c.csv", row=us_date),
        "bom": rewrite(sample, tmp_path / "d.csv", bom=True),
        "crlf": rewrite(sample, tmp_path / "e.csv", newline="\r\n"),
        "bom_crlf_upper_spaced": rewrite(sample, tmp_path / "f.csv", header=lambda h: [f" {n.upper()} " for n in h],
                                         newline="\r\n", bom=True),
    }
    for label, path in variants.items():
        result = read_firms(path)
        assert (len(result.rejected), result.warnings) == (0, []), label
        same_detections(base, result.frame)
    # a CRLF file keeps no carriage return anywhere
    assert not read_firms(variants["crlf"]).frame.version.str.contains("\r").any()


@needs_fires
def test_archive_files_with_a_type_column(tmp_path: Path):
    types = ["0", "1", "2", "3"]
    path = rewrite(MODIS_FILE, tmp_path / "archive.csv", header=lambda h: [*h, "type"],
                   row=lambda r, i: {**r, "type": types[i % 4], "version": "6.03"})
    result = read_firms(path)
    assert len(result.rejected) == 0
    assert result.frame.fire_type.tolist() == [i % 4 for i in range(len(result.frame))]
    assert (result.frame.fire_type == FIRE_TYPE_STATIC).sum() == len(result.frame[result.frame.index % 4 == 2])
    assert set(result.frame.version) == {"6.03"}
    same_detections(read_firms(MODIS_FILE).frame, result.frame, ignore=("fire_type", "version"))


@needs_fires
@pytest.mark.parametrize(("code", "expected"), [("N21", "NOAA-21"), ("2", "NOAA-21"), ("1", "NOAA-20"),
                                                ("N20", "NOAA-20"), ("N", "S-NPP")])
def test_viirs_satellite_codes(code: str, expected: str, tmp_path: Path):
    path = rewrite(SNPP_FILE, tmp_path / "sat.csv", row=lambda r, i: {**r, "satellite": code, "version": "2.0NRT"})
    result = read_firms(path)
    assert len(result.rejected) == 0
    assert set(result.frame.satellite) == {expected} and set(result.frame.instrument) == {"VIIRS"}


@needs_fires
def test_modis_satellite_names_and_viirs_without_instrument_column(tmp_path: Path):
    names = rewrite(MODIS_FILE, tmp_path / "names.csv",
                    row=lambda r, i: {**r, "satellite": {"T": "Terra", "A": "Aqua"}[r["satellite"]]})
    same_detections(read_firms(MODIS_FILE).frame, read_firms(names).frame)
    header, rows = reference(SNPP_FILE)
    keep = [n for n in header if n != "instrument"]
    text = ",".join(keep) + "\n" + "".join(",".join(r[n] for n in keep) + "\n" for r in rows)
    (tmp_path / "no_instrument.csv").write_text(text)
    result = read_firms(tmp_path / "no_instrument.csv")
    assert result.warnings == [] and len(result.rejected) == 0
    same_detections(read_firms(SNPP_FILE).frame, result.frame)


@needs_fires
def test_confidence_words(tmp_path: Path):
    words = {"l": "low", "n": "nominal", "h": "high"}
    path = rewrite(NOAA20_FILE, tmp_path / "words.csv",
                   row=lambda r, i: {**r, "confidence": words[r["confidence"]].upper() if i % 2 else
                                     words[r["confidence"]]})
    result = read_firms(path)
    assert len(result.rejected) == 0
    same_detections(read_firms(NOAA20_FILE).frame, result.frame)


@needs_fires
def test_columns_in_another_order(tmp_path: Path):
    header, rows = reference(MODIS_FILE)
    order = list(reversed(header))
    text = ",".join(order) + "\n" + "".join(",".join(r[n] for n in order) + "\n" for r in rows)
    (tmp_path / "reversed.csv").write_text(text)
    same_detections(read_firms(MODIS_FILE).frame, read_firms(tmp_path / "reversed.csv").frame)


# -- bad rows -----------------------------------------------------------------------------------

GOOD = "36.98998,117.61596,301.54,1.34,1.15,2022-02-26,0238,T,48,6.1NRT,288.6,4.52,D"
HEADER = ("latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,confidence,version,bright_t31,frp,"
          "daynight")
BAD = [
    ("malformed", GOOD + ",extra"),
    ("coordinate_out_of_range", "112,34,301.54,1.34,1.15,2022-02-26,0238,T,48,6.1NRT,288.6,4.52,D"),
    ("coordinate_not_number", "NaN,117.6,301.54,1.34,1.15,2022-02-26,0238,T,48,6.1NRT,288.6,4.52,D"),
    ("coordinate_not_number", "north,117.6,301.54,1.34,1.15,2022-02-26,0238,T,48,6.1NRT,288.6,4.52,D"),
    ("coordinate_missing", "36.9,,301.54,1.34,1.15,2022-02-26,0238,T,48,6.1NRT,288.6,4.52,D"),
    ("coordinate_out_of_range", "36.9,-180.5,301.54,1.34,1.15,2022-02-26,0238,T,48,6.1NRT,288.6,4.52,D"),
    ("bad_time", "36.9,117.6,301.54,1.34,1.15,2022-02-26,2460,T,48,6.1NRT,288.6,4.52,D"),
    ("bad_date", "36.9,117.6,301.54,1.34,1.15,13/45/2022,0238,T,48,6.1NRT,288.6,4.52,D"),
    ("bad_date", "36.9,117.6,301.54,1.34,1.15,2022-02-30,0238,T,48,6.1NRT,288.6,4.52,D"),
    ("unknown_satellite", "36.9,117.6,301.54,1.34,1.15,2022-02-26,0238,X9,48,6.1NRT,288.6,4.52,D"),
    ("bad_confidence", "36.9,117.6,301.54,1.34,1.15,2022-02-26,0238,T,150,6.1NRT,288.6,4.52,D"),
    ("bad_confidence", "36.9,117.6,301.54,1.34,1.15,2022-02-26,0238,N,48,2.0NRT,288.6,4.52,D"),
    ("bad_confidence", "36.9,117.6,301.54,1.34,1.15,2022-02-26,0238,N,x,2.0NRT,288.6,4.52,D"),
    ("bad_daynight", "36.9,117.6,301.54,1.34,1.15,2022-02-26,0238,T,48,6.1NRT,288.6,4.52,Q"),
    ("malformed", "36.9,117.6,301.54"),
]


def _template_pattern(template: str) -> str:
    """Return a regex matching any rendering of a message template."""
    parts = string.Formatter().parse(template)
    return "".join(re.escape(text) + (".*?" if field is not None else "") for text, field, _, _ in parts)


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_bad_rows_are_rejected_with_line_reason_message_and_raw(newline: str):
    lines = [HEADER, GOOD]
    expected = []
    for code, text in BAD:
        lines += [text, GOOD]
        expected.append((len(lines) - 1, code, text))  # 1-based line of the bad row
    data = newline.join(lines) + newline
    result = read_firms(data.encode(), name="bad.csv")
    rejected = result.rejected
    assert_rejected_schema(rejected)
    assert list(zip(rejected.line, rejected.reason, rejected.raw, strict=True)) == expected
    good_lines = [i + 1 for i, text in enumerate(lines) if text == GOOD]
    assert result.frame.line.tolist() == good_lines
    assert result.read == len(lines) - 1 == len(result.frame) + len(rejected)
    assert set(rejected.reason) <= set(REJECT_REASONS)
    for code, message in zip(rejected.reason, rejected.message, strict=True):
        assert any(re.fullmatch(_template_pattern(t), message) for t in _MESSAGES[code]), message
    by_line = dict(zip(rejected.line, rejected.message, strict=True))
    assert by_line[expected[0][0]] == "The line has 14 fields; the header has 13."
    assert by_line[expected[1][0]] == "Latitude 112 is out of range; latitude and longitude (34) look swapped."
    assert by_line[expected[6][0]] == \
        "The acq_time '2460' is not a UTC time of day (HHMM such as 0538 or 538, or HH:MM)."
    assert by_line[expected[9][0]] == \
        "Unknown satellite 'X9'; FIRMS uses T or A (MODIS), N, N20 or 1, N21 or 2 (VIIRS)."


def test_malformed_lines_first_and_last_and_in_a_row_keep_the_numbering():
    lines = [HEADER, GOOD + ",x", GOOD + ",x", GOOD, "1,2", GOOD, GOOD + ",x"]
    result = read_firms(("\n".join(lines) + "\n").encode())
    assert result.rejected.line.tolist() == [2, 3, 5, 7]
    assert result.rejected.reason.eq("malformed").all()
    assert result.frame.line.tolist() == [4, 6]


def test_pyarrow_numbers_invalid_rows_from_the_header_and_counts_skipped_ones():
    # the reader relies on this: on one thread, row.number is 1-based with the header as 1,
    # rows the handler skips still advance it, and quoting off makes every physical line one row
    seen = []

    def handler(row):
        seen.append((row.number, row.text))
        return "skip"

    data = b'a,b\n1,2\n3\n4,5\n"6,7\n8,9,10\n\n11,12\n'
    table = pacsv.read_csv(
        pa.BufferReader(data),
        read_options=pacsv.ReadOptions(use_threads=False, column_names=["a", "b"], skip_rows=1),
        parse_options=pacsv.ParseOptions(quote_char=False, ignore_empty_lines=False, invalid_row_handler=handler),
        convert_options=pacsv.ConvertOptions(column_types={"a": pa.string(), "b": pa.string()}))
    assert seen == [(3, "3"), (6, "8,9,10")]
    assert table.column("a").to_pylist() == ["1", "4", '"6', "", "11"]  # lines 2, 4, 5, 7, 8


def test_blank_lines_and_separator_only_lines_are_skipped_not_rejected():
    lines = [HEADER, GOOD, "", GOOD, ",,,,,,,,,,,,", "   ", GOOD]
    result = read_firms(("\n".join(lines) + "\n\n").encode())
    assert len(result.rejected) == 0
    assert result.frame.line.tolist() == [2, 4, 7]
    assert result.read == 3
    assert result.warnings == ["Skipped 4 empty lines."]


def test_leading_blank_lines_count_in_line_numbers():
    result = read_firms(("\n\n" + HEADER + "\n" + GOOD + "\n" + GOOD.replace("0238", "2500") + "\n").encode())
    assert result.frame.line.tolist() == [4]
    assert result.rejected.line.tolist() == [5]


def test_quoted_fields_as_spreadsheets_write_them():
    quoted = ",".join(f'"{v}"' for v in GOOD.split(","))
    with_comma = GOOD.replace("6.1NRT", '"6.1NRT, reprocessed"')
    result = read_firms(f"{HEADER}\n{quoted}\n{with_comma}\n{GOOD}\n".encode())
    assert len(result.rejected) == 0
    assert result.frame.line.tolist() == [2, 3, 4]
    assert result.frame.version.tolist() == ["6.1NRT", "6.1NRT, reprocessed", "6.1NRT"]
    assert result.frame.latitude.tolist() == [36.98998] * 3
    # a stray quote does not swallow the following lines
    stray = GOOD.replace("36.98998", '"36.98998')
    result = read_firms(f"{HEADER}\n{stray}\n{GOOD.replace('301.54', '3x1')}\n{GOOD}\n".encode())
    assert result.frame.line.tolist() == [2, 3, 4] and len(result.rejected) == 0


def test_non_numeric_optional_values_are_left_empty_with_a_warning():
    result = read_firms(f"{HEADER}\n{GOOD.replace('4.52', 'n/a')}\n{GOOD}\n".encode())
    assert len(result.rejected) == 0
    assert math.isnan(result.frame.frp[0]) and result.frame.frp[1] == 4.52
    assert result.warnings == ["1 rows have a frp that is not a number; it is left empty."]


def test_invalid_utf8_is_replaced_not_fatal():
    data = f"{HEADER}\n{GOOD}\n".encode() + GOOD.replace("6.1NRT", "6.1NRT\udcff").encode("utf-8", "surrogateescape")
    result = read_firms(data + b"\n")
    assert len(result.frame) == 2 and result.frame.version[1] == "6.1NRT\ufffd"
    assert result.warnings == ["The file is not valid UTF-8; undecodable bytes were replaced."]


def test_optional_columns_may_be_absent():
    header = "latitude,longitude,brightness,acq_date,acq_time,satellite,confidence"
    result = read_firms(f"{header}\n34.5,112.4,320.5,2022-05-28,538,A,85\n".encode())
    assert_schema(result.frame)
    row = result.frame.iloc[0]
    assert row.acq_time == pd.Timestamp("2022-05-28 05:38", tz="UTC") and row.confidence_class == "high"
    assert math.isnan(row.frp) and pd.isna(row.daynight) and pd.isna(row.version)
    assert result.warnings == ["The file has no bright_t31, frp, scan, track, daynight, version column; "
                               "those values are left empty."]


# -- whole-file problems ------------------------------------------------------------------------


@needs_fires
def test_a_file_missing_required_columns_is_refused(tmp_path: Path):
    header, rows = reference(MODIS_FILE)
    keep = [n for n in header if n not in ("acq_time", "confidence", "brightness")]
    path = tmp_path / "cut.csv"
    path.write_text(",".join(keep) + "\n" + "".join(",".join(r[n] for n in keep) + "\n" for r in rows))
    with pytest.raises(ValidationError) as info:
        read_firms(path)
    err = info.value
    assert err.params["file"] == str(path)
    assert err.params["missing"] == "acq_time, confidence, brightness (or bright_ti4)"
    assert err.params["found"] == ", ".join(keep)
    assert str(path) in str(err) and "acq_time" in str(err) and "latitude" in str(err)
    assert "{" in err.template and "acq_time" not in err.template  # values stay out of the msgid


@needs_fires
def test_header_only_and_empty_files_have_no_rows(tmp_path: Path):
    header_only = tmp_path / "header.csv"
    header_only.write_bytes(MODIS_FILE.read_bytes().splitlines(keepends=True)[0])
    for path in (header_only, tmp_path / "empty.csv"):
        path.touch()
        result = read_firms(path)
        assert (result.read, len(result.frame), len(result.rejected)) == (0, 0, 0)
        assert_schema(result.frame)
        assert_rejected_schema(result.rejected)
    assert read_firms(header_only).warnings == []
    assert read_firms(tmp_path / "empty.csv").warnings == ["The file is empty."]
    assert read_firms(HEADER.encode()).read == 0  # no final newline either


def test_html_pages_and_binary_files_are_not_csv():
    with pytest.raises(ValidationError, match="not CSV text.*HTML"):
        read_firms(b"<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head></html>\n",
                   name="firms.csv")
    with pytest.raises(ValidationError, match="not CSV text.*binary"):
        read_firms(b"PK\x03\x04\x14\x00\x00\x00\x08\x00", name="firms.zip")
    with pytest.raises(ValidationError) as info:
        read_firms(b"  \n<html></html>", name="page.csv")
    assert info.value.params["file"] == "page.csv"


def test_utf16_files_are_converted():
    result = read_firms(f"{HEADER}\n{GOOD}\n".encode("utf-16"))
    assert len(result.frame) == 1 and result.frame.latitude[0] == 36.98998


def test_the_layer_protocol():
    layer = FirePointsLayer()
    assert isinstance(layer, Layer) and layer.kind == "fire_points"
    result = layer.read(f"{HEADER}\n{GOOD}\n".encode(), name="x.csv")
    assert result.source == "x.csv" and result.accepted == 1
    with pytest.raises(TypeError):
        layer.read(b"", colour="red")


def test_exported_constants():
    assert FIRE_TYPE_STATIC == 2
    assert CONFIDENCE_CLASSES == ("low", "nominal", "high")
    assert {SATELLITES[c] for c in ("t", "a", "n", "n20", "1", "n21", "2")} == \
        {"Terra", "Aqua", "S-NPP", "NOAA-20", "NOAA-21"}


# -- round trips of random rows -----------------------------------------------------------------

SAT_CODES = {"Terra": ["T", "Terra"], "Aqua": ["A", "Aqua"], "S-NPP": ["N"], "NOAA-20": ["N20", "1"],
             "NOAA-21": ["N21", "2"]}
LETTERS = {"low": ["l", "low", "L", "Low"], "nominal": ["n", "nominal", "N"], "high": ["h", "high", "HIGH"]}


def _number(lo: float, hi: float, places: int):
    return st.integers(int(lo * 10**places), int(hi * 10**places)).map(lambda v: f"{v / 10**places:.{places}f}")


@st.composite
def fire_rows(draw):
    satellite = draw(st.sampled_from(list(SAT_CODES)))
    modis = satellite in ("Terra", "Aqua")
    when = draw(st.datetimes(min_value=dt.datetime(2000, 11, 1), max_value=dt.datetime(2035, 12, 31)))
    row = {
        "latitude": draw(_number(-90, 90, 5)), "longitude": draw(_number(-180, 180, 5)),
        "brightness": draw(_number(200, 510, 2)), "bright_t31": draw(_number(200, 400, 2)),
        "frp": draw(_number(0, 9000, 2)), "scan": draw(_number(0.3, 4.9, 2)), "track": draw(_number(0.3, 2.1, 2)),
        "satellite": satellite, "sat_code": draw(st.sampled_from(SAT_CODES[satellite])),
        "when": when.replace(second=0, microsecond=0),
        "daynight": draw(st.sampled_from(["D", "N"])),
        "version": draw(st.sampled_from(["6.1NRT", "6.0NRT", "2.0NRT", "6.03", "1"])),
        "type": draw(st.integers(0, 3)),
    }
    if modis:
        row["confidence"] = draw(st.integers(0, 100))
        row["conf_text"] = str(row["confidence"])
        row["class"] = modis_class(row["confidence"])
    else:
        row["class"] = draw(st.sampled_from(CONFIDENCE_CLASSES))
        row["confidence"] = None
        row["conf_text"] = draw(st.sampled_from(LETTERS[row["class"]]))
    return row


@st.composite
def fire_files(draw):
    rows = draw(st.lists(fire_rows(), min_size=1, max_size=30))
    style = {
        "viirs_names": draw(st.booleans()), "instrument": draw(st.booleans()), "type": draw(st.booleans()),
        "time": draw(st.sampled_from(["padded", "bare", "colon"])), "us_date": draw(st.booleans()),
        "bom": draw(st.booleans()), "newline": draw(st.sampled_from(["\n", "\r\n"])),
        "upper": draw(st.booleans()), "spaces": draw(st.booleans()), "final_newline": draw(st.booleans()),
    }
    columns = ["latitude", "longitude", "bright_ti4" if style["viirs_names"] else "brightness", "scan", "track",
               "acq_date", "acq_time", "satellite", *(["instrument"] if style["instrument"] else []), "confidence",
               "version", "bright_ti5" if style["viirs_names"] else "bright_t31", "frp", "daynight",
               *(["type"] if style["type"] else [])]
    columns = draw(st.permutations(columns))
    return rows, style, list(columns)


def _render(rows, style, columns) -> bytes:
    def cell(row, column):
        when = row["when"]
        if column == "acq_date":
            return f"{when.month}/{when.day}/{when.year}" if style["us_date"] else when.strftime("%Y-%m-%d")
        if column == "acq_time":
            hhmm = when.hour * 100 + when.minute
            return {"padded": f"{hhmm:04d}", "bare": str(hhmm), "colon": when.strftime("%H:%M")}[style["time"]]
        if column == "satellite":
            return row["sat_code"]
        if column == "instrument":
            return "MODIS" if row["satellite"] in ("Terra", "Aqua") else "VIIRS"
        if column == "confidence":
            return row["conf_text"]
        if column == "type":
            return str(row["type"])
        key = {"bright_ti4": "brightness", "bright_ti5": "bright_t31"}.get(column, column)
        return row[key]

    names = [c.upper() if style["upper"] else c for c in columns]
    names = [f" {c} " if style["spaces"] else c for c in names]
    nl = style["newline"]
    lines = [",".join(names)] + [",".join(cell(r, c) for c in columns) for r in rows]
    text = nl.join(lines) + (nl if style["final_newline"] else "")
    return (b"\xef\xbb\xbf" if style["bom"] else b"") + text.encode()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fire_files())
def test_random_rows_in_random_variants_read_back_exactly(case):
    rows, style, columns = case
    result = read_firms(_render(rows, style, columns), name="random.csv", now=dt.datetime(2036, 1, 1))
    assert len(result.rejected) == 0, result.rejected.message.tolist()
    assert result.warnings == []
    frame = result.frame
    assert_schema(frame)
    assert frame.line.tolist() == list(range(2, len(rows) + 2))
    for column in ("latitude", "longitude", "brightness", "bright_t31", "frp", "scan", "track"):
        assert frame[column].tolist() == [float(r[column]) for r in rows], column
    assert frame.acq_time.tolist() == [pd.Timestamp(r["when"], tz="UTC") for r in rows]
    assert frame.satellite.tolist() == [r["satellite"] for r in rows]
    assert frame.instrument.tolist() == ["MODIS" if r["satellite"] in ("Terra", "Aqua") else "VIIRS" for r in rows]
    assert [None if pd.isna(v) else v for v in frame.confidence] == [r["confidence"] for r in rows]
    assert frame.confidence_class.tolist() == [r["class"] for r in rows]
    assert frame.daynight.tolist() == [r["daynight"] for r in rows]
    assert frame.version.tolist() == [r["version"] for r in rows]
    if style["type"]:
        assert frame.fire_type.tolist() == [r["type"] for r in rows]
    else:
        assert frame.fire_type.isna().all()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.just(GOOD), st.text(alphabet=',"; .-+:/0123456789abcdeflnhTANDQ\t', max_size=90)),
                max_size=25))
def test_garbage_lines_never_break_the_good_ones(body):
    lines = [HEADER, *body]
    result = read_firms(("\n".join(lines) + "\n").encode(), name="garbage.csv")
    good = {i + 1 for i, text in enumerate(lines) if text == GOOD}
    blank = {i + 1 for i, text in enumerate(lines) if i and not text.strip(' ,\t"')}
    accepted, rejected = set(result.frame.line), set(result.rejected.line)
    assert good <= accepted
    assert accepted | rejected | blank == set(range(2, len(lines) + 1))
    assert not accepted & rejected and not (accepted | rejected) & blank
    assert result.read == len(accepted) + len(rejected)
    for line, raw in zip(result.rejected.line, result.rejected.raw, strict=True):
        assert raw == lines[line - 1]


# -- impossible dates -----------------------------------------------------------------------------

NOW = dt.datetime(2024, 10, 1, 6, 0)


@pytest.mark.parametrize(("date", "time", "reason"), [
    ("2030-06-01", "0238", "acquired_in_future"),
    ("2099-12-31", "2359", "acquired_in_future"),
    ("1970-01-01", "0000", "acquired_before_record"),
    ("2000-10-31", "2359", "acquired_before_record"),
    ("2024-10-01", "0701", "acquired_in_future"),  # one minute beyond the hour of tolerance
])
def test_impossible_dates_are_rejected_with_their_reason_and_nothing_else_changes(date, time, reason):
    good = [GOOD, GOOD.replace("0238", "0301"), GOOD.replace("2022-02-26", "2024-10-01").replace("0238", "0700")]
    bad = f"36.9,117.6,301.54,1.34,1.15,{date},{time},T,48,6.1NRT,288.6,4.52,D"
    clean = read_firms("\n".join([HEADER, *good]).encode(), now=NOW)
    mixed = read_firms("\n".join([HEADER, good[0], bad, *good[1:]]).encode(), now=NOW)
    assert mixed.rejected[["line", "reason", "raw"]].to_dict("records") == [{"line": 3, "reason": reason, "raw": bad}]
    message = mixed.rejected.message[0]
    assert any(re.fullmatch(_template_pattern(t), message) for t in _MESSAGES[reason]), message
    assert date in message
    lines = mixed.frame.line
    same_detections(clean.frame, mixed.frame.assign(line=lines.where(lines < 3, lines - 1)))
    assert mixed.read == clean.read + 1


def test_the_limits_come_from_the_caller_and_the_record_start_is_the_policy_s():
    from gridwatch.policy import EARLIEST_DATA
    from layers.fire_points import EARLIEST_ACQUISITION, FUTURE_TOLERANCE

    assert EARLIEST_ACQUISITION == EARLIEST_DATA and FUTURE_TOLERANCE == dt.timedelta(hours=1)
    text = "\n".join([HEADER, GOOD]).encode()
    assert read_firms(text, now=dt.datetime(2022, 2, 26, 3, 38)).rejected.empty
    late = read_firms(text, now=dt.datetime(2022, 2, 26, 1, 37, tzinfo=UTC))
    assert late.rejected.reason.tolist() == ["acquired_in_future"] and late.frame.empty
    assert "2022-02-26 01:37 UTC" in late.rejected.message[0]
    assert read_firms(text, now=dt.datetime(2022, 2, 26, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
                      ).rejected.reason.tolist() == ["acquired_in_future"]
    assert FirePointsLayer().read(text, now=dt.datetime(2022, 2, 26, 1, 0)).rejected.reason.tolist() == \
        ["acquired_in_future"]
