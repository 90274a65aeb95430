"""Report writers: tables with Chinese headers, CSV, Excel, the printable HTML bulletin (通报), dossiers, maps.

Everything here turns a computed :class:`~gridwatch.reports.Report` (or a
dossier frame) into bytes or text; nothing reads the store. The same table
frame feeds the page, the CSV and the Excel file, so a download always matches
what the page shows. Text from users and files is made inert on the way out
(:mod:`gridwatch.encode`): HTML-escaped in the bulletin and dossiers, and, in
CSV and Excel cells, given a leading ``'`` when a spreadsheet would take it as
a formula; Excel cells of text are written as text, numbers as numbers.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from gridwatch.encode import html_text, sheet_cell
from gridwatch.i18n import N_, gettext, task_titles
from gridwatch.maps import cells_svg
from gridwatch.accountability import KINDS as MEASURE_KINDS
from gridwatch.accountability import PERSON_ROLES, REVOCATION, REVOCATION_LABEL
from gridwatch.reports import METRICS, STATUSES, Report, column_labels

__all__ = ["ranking_frame", "daily_frame", "to_csv", "to_xlsx", "report_xlsx", "bulletin_html", "dossier_frame",
           "dossier_html", "measures_frame", "choropleth_svg", "COLOURS"]

#: sequential reds (ColorBrewer Reds, 5 classes) and the colour of zero
COLOURS = ("#fee5d9", "#fcae91", "#fb6a4a", "#de2d26", "#a50f15")
ZERO = "#eeeeee"
_KIND = {c.name: c.kind for m in METRICS for c in m.columns}
_PERCENT = ("confirmation_rate", "closure_rate")


def ranking_frame(report: Report) -> pd.DataFrame:
    """The ranking table as shown and downloaded: headers in the report's language, one row per unit.

    Rates are percentages (one decimal), hours and densities two decimals, flags 是/yes or empty.
    """
    lang = report.language
    labels = column_labels(lang)
    rows = report.rows
    out = pd.DataFrame(index=rows.index)
    yes = gettext("yes", lang)
    for name in report.table_columns():
        values = rows[name]
        kind = _KIND.get(name, "")
        if name in _PERCENT:
            values = (values.astype(float) * 100).round(1)
        elif kind in ("hours", "density", "area") or name in ("score", "deduction_yuan"):
            values = values.astype(float).round(2)
        elif kind == "flag":
            values = values.map(lambda v: yes if v else "")
        elif name == "status":
            values = values.map(lambda s: gettext(STATUSES[s], lang) if s else "")
        elif kind == "text" or name in ("parent_name", "affected"):
            values = values.fillna("").astype(str)
        elif name == "rank_change":
            values = values.astype("Int64")
        header = labels[name] + (" (%)" if name in _PERCENT else "")
        out[header] = values
    return out.reset_index(drop=True)


def daily_frame(report: Report) -> pd.DataFrame:
    """Fire points and incidents per local day, with translated headers."""
    lang = report.language
    return pd.DataFrame({gettext("Day", lang): report.daily.day.astype(str),
                         column_labels(lang)["fire_points"]: report.daily.fire_points,
                         column_labels(lang)["incidents"]: report.daily.incidents})


def to_csv(frame: pd.DataFrame) -> bytes:
    r"""CSV in UTF-8 with a BOM, so spreadsheet programs keep the Chinese; no text cell reads as a formula.

    Lines end in CRLF (RFC 4180), so a field holding a carriage return is quoted and cannot start a row of its own.

    Examples
    --------
    >>> to_csv(pd.DataFrame({"单位": ["=1+1", "伊川县", "\r=2"], "n": [-1, 2, 3]})).decode("utf-8-sig")
    '单位,n\r\n\'=1+1,-1\r\n伊川县,2\r\n"\'\r=2",3\r\n'
    """
    return _inert(frame).to_csv(index=False, lineterminator="\r\n").encode("utf-8-sig")


def _inert(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every text cell and header passed through :func:`~gridwatch.encode.sheet_cell`."""
    out = frame.copy()
    out.columns = [sheet_cell(str(c)) for c in frame.columns]
    for i in range(out.shape[1]):
        column = out.iloc[:, i]
        if column.dtype == object or pd.api.types.is_string_dtype(column.dtype):
            out.isetitem(i, column.map(sheet_cell))
    return out


def to_xlsx(sheets: Mapping[str, pd.DataFrame], *, percent_columns: Sequence[str] = ()) -> bytes:
    """An Excel workbook with one sheet per frame: bold headers on row 1, frozen, columns sized to fit."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill

    book = Workbook()
    book.remove(book.active)
    for title, frame in sheets.items():
        sheet = book.create_sheet(title=str(title)[:31])
        sheet.append([sheet_cell(str(c)) for c in frame.columns])
        for cell in sheet[1]:
            cell.font = Font(bold=True)
            cell.fill = PatternFill("solid", fgColor="EEEEEE")
            cell.alignment = Alignment(wrap_text=True, vertical="center")
        for row in frame.astype(object).where(frame.notna(), None).itertuples(index=False):
            sheet.append([sheet_cell(_cell_value(v)) for v in row])
            for cell in sheet[sheet.max_row]:
                if isinstance(cell.value, str):
                    cell.data_type = "s"  # text stays text, whatever it starts with
        sheet.freeze_panes = "A2"
        for i, column in enumerate(frame.columns, start=1):
            width = max([_width(str(column))] + [_width(str(v)) for v in frame[column].head(200)])
            sheet.column_dimensions[sheet.cell(row=1, column=i).column_letter].width = min(max(width + 2, 6), 60)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _cell_value(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if value is pd.NA:
        return None
    return value


def _width(text: str) -> int:
    """Display width: CJK characters count double."""
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _notes(report: Report) -> pd.DataFrame:
    lang = report.language
    rows = [
        (gettext("Report type", lang), report.period.kind_label(lang)),
        (gettext("Unit", lang), f"{report.scope_name} ({report.scope_code})"),
        (gettext("Period", lang), report.period.label(lang)),
        (gettext("First day", lang), report.period.start.isoformat()),
        (gettext("Last day", lang), report.period.end.isoformat()),
        (gettext("Time zone", lang), report.period.timezone),
        (gettext("Ranked level", lang), gettext(report.level, lang)),
        (gettext("Score rule", lang), report.rules.rule_text(lang)),
        (gettext("Accountability rule", lang), report.rules.threshold_text(lang)),
        (gettext("Rank change", lang), gettext("compared with {period}: positive means moved up", lang).format(
            period=report.previous.label(lang))),
        (gettext("Generated (UTC)", lang), report.generated_at.strftime("%Y-%m-%d %H:%M")),
    ]
    if report.demo:
        rows.append((gettext("Data", lang), gettext("Generated demo data (演示), not real.", lang)))
    return pd.DataFrame(rows, columns=[gettext("Item", lang), gettext("Value", lang)])


def report_xlsx(report: Report) -> bytes:
    """The report as Excel: the ranking, the notes (period, rule, thresholds) and fire points per day."""
    lang = report.language
    return to_xlsx({gettext("Ranking", lang): ranking_frame(report), gettext("About", lang): _notes(report),
                    gettext("Fire points per day", lang): daily_frame(report)})


_CSS = """
body{font-family:"Noto Sans CJK SC","Source Han Sans SC","Microsoft YaHei","PingFang SC",sans-serif;margin:24px;
color:#111;line-height:1.5}
h1{font-size:22px;text-align:center;margin:0 0 4px}
.sub{text-align:center;color:#444;margin:0 0 16px}
h2{font-size:16px;border-left:4px solid #a50f15;padding-left:8px;margin:20px 0 8px}
table{border-collapse:collapse;width:100%;font-size:12px}
th,td{border:1px solid #999;padding:3px 5px;text-align:center}
th{background:#eee}
td.l{text-align:left}
tr.hit td{background:#fde0dd}
.rule{font-size:12px;color:#333}
.demo{border:1px solid #c60;padding:6px;color:#c60}
.map svg{max-width:520px}
footer{margin-top:24px;font-size:11px;color:#666}
@media print{body{margin:10mm}h2{break-after:avoid}tr{break-inside:avoid}.noprint{display:none}
@page{size:A4 landscape;margin:10mm}}
"""

#: headings of the bulletin (marked here, as calls inside f-strings are not extracted)
_SUGGESTED = N_("Suggested by the local thresholds (建议): a suggestion until a leader records the measure")
_HEADINGS = (N_("Summary"), N_("Ranking"), N_("Accountability"), N_("No unit reached a threshold."), N_("Map"),
             N_("Generated (UTC)"), N_("No measure has been recorded for this period."), _SUGGESTED)
_BULLETIN_COLUMNS = ("rank", "rank_change", "unit_name", "fire_points", "incidents", "dispatched", "confirmed",
                     "confirmation_rate", "fires_per_100km2", "arrival_median_h", "report_median_h",
                     "tasks_overdue", "cells_not_visited", "first_fire", "status", "deduction_yuan")


def bulletin_html(report: Report, *, map_svg: str = "", measures: pd.DataFrame | None = None) -> str:
    """The printable bulletin (通报) of a report: self-contained HTML with print CSS, no scripts, no network.

    ``measures`` (from :func:`measures_frame`) are the measures recorded for the period, listed with their
    document numbers; what local thresholds infer is listed apart, as a suggestion (建议).
    """
    lang = report.language
    frame = ranking_frame(report)
    labels = column_labels(lang)
    wanted = [c for c in _BULLETIN_COLUMNS if c in report.rows]
    headers = [labels[c] + (" (%)" if c in _PERCENT else "") for c in wanted]
    totals = report.totals()
    title = gettext("{unit} satellite fire point bulletin ({period})", lang).format(
        unit=report.scope_name, period=report.period.label(lang))
    rate = totals.get("confirmation_rate")
    summary = gettext("In {period}, {points} satellite fire points ({incidents} incidents) were detected in "
                      "{unit}; {dispatched} fire checks were dispatched, {confirmed} fires confirmed "
                      "(confirmation rate {rate}); {overdue} tasks were overdue.", lang).format(
        period=report.period.label(lang), points=totals.get("fire_points", 0), incidents=totals.get("incidents", 0),
        unit=report.scope_name, dispatched=totals.get("dispatched", 0), confirmed=totals.get("confirmed", 0),
        rate="—" if rate is None else f"{rate:.0%}", overdue=totals.get("tasks_overdue", 0))
    body = ["<tr>" + "".join(f"<th>{html_text(h)}</th>" for h in headers) + "</tr>"]
    for i, row in frame.iterrows():
        hit = bool(report.rows.status.iloc[i])
        cells = []
        for column, header in zip(wanted, headers):
            value = row[header]
            text = "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)
            cells.append(f'<td{" class=l" if column == "unit_name" else ""}>{html_text(text)}</td>')
        body.append(f'<tr{" class=hit" if hit else ""}>' + "".join(cells) + "</tr>")
    hits = report.rows[report.rows.status != ""]
    accountability = "".join(
        f"<li><b>{html_text(r.unit_name)}</b>：{html_text(gettext(STATUSES[r.status], lang))}；"
        f"{html_text(labels['fire_points'])} {int(r.fire_points)}；{html_text(labels['deduction_yuan'])} "
        f"{r.deduction_yuan:,.0f}；{html_text(labels['affected'])}：{html_text(r.affected or '—')}</li>"
        for r in hits.itertuples())
    first = report.rows[report.rows.get("first_fire", pd.Series(False, index=report.rows.index)).eq(True)]
    first_html = "".join(
        f"<p>🔥 {html_text(labels['first_fire'])}：<b>{html_text(r.unit_name)}</b> "
        f"{html_text(str(r.first_fire_at))}</p>" for r in first.itertuples())
    parts = [
        "<!DOCTYPE html>", f'<html lang="{"zh-CN" if lang != "en" else "en"}"><head><meta charset="utf-8">',
        f"<title>{html_text(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html_text(title)}</h1>",
        f'<p class="sub">{html_text(report.period.kind_label(lang))} · {html_text(report.period.start.isoformat())} — '
        f"{html_text(report.period.end.isoformat())}（{html_text(report.period.timezone)}）</p>",
    ]
    if report.demo:
        parts.append(f'<p class="demo">{html_text(gettext("Generated demo data (演示), not real.", lang))}</p>')
    heading = {key: html_text(gettext(key, lang)) for key in _HEADINGS}
    parts += [f"<h2>{heading['Summary']}</h2><p>{html_text(summary)}</p>", first_html]
    parts += [f"<h2>{heading['Ranking']}</h2>", f"<table>{''.join(body)}</table>",
              f'<p class="rule">{html_text(report.rules.rule_text(lang))}</p>']
    parts.append(f"<h2>{heading['Accountability']}</h2>")
    if measures is not None:
        parts.append(_table_html(measures) if len(measures) else
                     f"<p>{heading['No measure has been recorded for this period.']}</p>")
    if report.rules.thresholds or report.rules.deduction_yuan:
        parts += [f"<p><b>{heading[_SUGGESTED]}</b></p>",
                  f"<ul>{accountability}</ul>" if accountability else
                  f"<p>{heading['No unit reached a threshold.']}</p>"]
    parts.append(f'<p class="rule">{html_text(report.rules.threshold_text(lang))}</p>')
    if map_svg:
        parts += [f"<h2>{heading['Map']}</h2>", f'<div class="map">{map_svg}</div>']
    parts.append(f"<footer>gridwatch · {heading['Generated (UTC)']} "
                 f"{report.generated_at:%Y-%m-%d %H:%M}</footer></body></html>")
    return "\n".join(parts)


_DOSSIER_LABELS = {"task_id": N_("Task"), "kind": N_("Kind"), "title": N_("Title"), "cell": N_("Cell"),
                   "village": N_("Village"), "happened_at": N_("Time (local)"), "from_state": N_("From state"),
                   "to_state": N_("To state"), "actor": N_("By"), "finding": N_("Finding"), "note": N_("Note"),
                   "flags": N_("Flags"), "assignee": N_("Assignee")}


def dossier_frame(events: pd.DataFrame, language: str = "zh_CN", *,
                  measures: pd.DataFrame | None = None) -> pd.DataFrame:
    """Task events (from :func:`gridwatch.reports.dossier_events`) with translated headers and values.

    Given ``measures`` (from :func:`gridwatch.accountability.read`), the unit's recorded accountability measures
    come first, one row each, with two more columns: the document number (文号) and the person concerned.
    """
    if "title" in events:  # each task's title in the dossier's language (the kind has its own column)
        events = events.assign(title=task_titles(events.drop(columns="kind", errors="ignore"), language))
    out = pd.DataFrame({gettext(label, language): events[name] for name, label in _DOSSIER_LABELS.items()
                        if name in events})
    for name in ("kind", "from_state", "to_state", "finding"):
        header = gettext(_DOSSIER_LABELS[name], language)
        if header in out:
            out[header] = out[header].map(lambda v: gettext(v, language) if isinstance(v, str) and v else "")
    if measures is None:
        return out
    label = {name: gettext(text, language) for name, text in _DOSSIER_LABELS.items()}
    document, person = gettext("Document number (文号)", language), gettext("Person concerned", language)
    rows = pd.DataFrame({
        label["kind"]: [_measure_label(r, language) for r in measures.itertuples()],
        label["village"]: measures.unit_name.astype(str) if len(measures) else [],
        label["happened_at"]: measures.issued_on.astype(str) if len(measures) else [],
        label["actor"]: measures.issued_by.astype(str) if len(measures) else [],
        label["note"]: measures.reason.astype(str) if len(measures) else [],
        document: measures.document_no.astype(str) if len(measures) else [],
        person: [_person_text(r, language) for r in measures.itertuples()],
    })
    out = out.assign(**{document: "", person: ""})
    if rows.empty:
        return out
    numeric = [c for c in out.columns if pd.api.types.is_integer_dtype(out[c].dtype)]
    merged = pd.concat([rows.reindex(columns=out.columns).astype(object), out.astype(object)], ignore_index=True)
    text = [c for c in merged.columns if c not in numeric]
    merged[text] = merged[text].where(merged[text].notna(), "")
    return merged.astype({c: "Int64" for c in numeric})


_MEASURE_LABELS = {"id": N_("Record"), "kind": N_("Measure"), "unit_name": N_("Unit"),
                   "person": N_("Person concerned"), "issued_on": N_("Date issued"),
                   "document_no": N_("Document number (文号)"), "reason": N_("Reason"),
                   "amount_yuan": N_("Amount (yuan)"), "period": N_("Period"), "issued_by": N_("Recorded by"),
                   "standing": N_("Standing")}
_IN_FORCE, _REVOKED_BY, _REVOKES = N_("in force"), N_("revoked by record {id}"), N_("revokes record {id}")


def _measure_label(row, language: str) -> str:
    if row.kind == REVOCATION:
        return gettext(REVOCATION_LABEL, language).format(id=int(row.revokes))
    return gettext(MEASURE_KINDS[row.kind], language)


def _person_text(row, language: str) -> str:
    if not row.person_name:
        return ""
    role = PERSON_ROLES.get(row.person_role)
    return f"{row.person_name}（{gettext(role, language)}）" if role else str(row.person_name)


def _standing(row, language: str) -> str:
    if row.kind == REVOCATION:
        return gettext(_REVOKES, language).format(id=int(row.revokes))
    if row.revoked_by is not None and not pd.isna(row.revoked_by):
        return gettext(_REVOKED_BY, language).format(id=int(row.revoked_by))
    return gettext(_IN_FORCE, language)


def measures_frame(measures: pd.DataFrame, language: str = "zh_CN") -> pd.DataFrame:
    """Recorded measures (from :func:`gridwatch.accountability.read`) as shown and downloaded: one row each,
    headers and kinds in ``language``, the grid leader named as the first responsible person."""
    rows = list(measures.itertuples())
    values = {
        "id": [int(r.id) for r in rows],
        "kind": [_measure_label(r, language) for r in rows],
        "unit_name": [str(r.unit_name) for r in rows],
        "person": [_person_text(r, language) for r in rows],
        "issued_on": [str(r.issued_on) for r in rows],
        "document_no": [str(r.document_no) for r in rows],
        "reason": [str(r.reason) for r in rows],
        "amount_yuan": [None if r.amount_yuan is None or pd.isna(r.amount_yuan) else float(r.amount_yuan)
                        for r in rows],
        "period": [f"{r.period_start} – {r.period_end}" if r.period_start else "" for r in rows],
        "issued_by": [str(r.issued_by) for r in rows],
        "standing": [_standing(r, language) for r in rows],
    }
    return pd.DataFrame({gettext(_MEASURE_LABELS[k], language): v for k, v in values.items()})


def dossier_html(title: str, frame: pd.DataFrame, *, note: str = "", chain: str = "") -> str:
    """A dossier as printable HTML; ``chain`` (the tamper-evident chain head) is printed at its foot."""
    head = "<tr>" + "".join(f"<th>{html_text(c)}</th>" for c in frame.columns) + "</tr>"
    rows = "".join("<tr>" + "".join(f"<td class=l>{html_text(v)}</td>" for v in row) + "</tr>"
                   for row in frame.astype(object).itertuples(index=False))
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
            f"<title>{html_text(title)}</title><style>{_CSS}</style></head><body><h1>{html_text(title)}</h1>"
            f'<p class="sub">{html_text(note)}</p><table>{head}{rows}</table>'
            + (f"<footer>{html_text(chain)}</footer>" if chain else "") + "</body></html>")


def _table_html(frame: pd.DataFrame) -> str:
    """A frame as an HTML table, every value as text."""
    head = "<tr>" + "".join(f"<th>{html_text(c)}</th>" for c in frame.columns) + "</tr>"
    rows = "".join("<tr>" + "".join(f"<td class=l>{html_text('' if v is None or v != v else v)}</td>" for v in row)
                   + "</tr>" for row in frame.astype(object).itertuples(index=False))
    return f"<table>{head}{rows}</table>"


def choropleth_svg(cells: Sequence[str], values: Sequence[float], *, titles: Sequence[str] | None = None,
                   width: int = 640) -> tuple[str, list[tuple[str, str]]]:
    """Cells coloured by their unit's value in five equal classes of reds (zero grey), and the legend.

    Returns the SVG and ``[(colour, range text), …]``.
    """
    v = np.asarray(values, dtype=float)
    v = np.where(np.isnan(v), 0, v)
    top = float(v.max()) if len(v) else 0.0
    edges = np.linspace(0, top, len(COLOURS) + 1) if top > 0 else np.zeros(len(COLOURS) + 1)
    classes = np.clip(np.searchsorted(edges[1:-1], v, side="left"), 0, len(COLOURS) - 1)
    fills = np.where(v > 0, np.asarray(COLOURS, dtype=object)[classes], ZERO)
    legend = [(ZERO, "0")]
    if top > 0:
        legend += [(COLOURS[i], f"{edges[i]:.3g}–{edges[i + 1]:.3g}") for i in range(len(COLOURS))]
    return cells_svg(list(cells), list(fills), titles=titles, width=width), legend


def legend_html(legend: list[tuple[str, str]], caption: str = "") -> str:
    """A small inline legend for :func:`choropleth_svg`."""
    items = "".join(f'<span style="display:inline-block;margin-right:10px"><span style="display:inline-block;'
                    f'width:14px;height:14px;background:{c};border:1px solid #999;vertical-align:middle"></span> '
                    f"{html_text(t)}</span>" for c, t in legend)
    return f'<div style="font-size:13px">{html_text(caption)} {items}</div>'
