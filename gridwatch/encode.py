r"""Text from users and files made inert for each place it is shown: HTML, markdown, map tooltips, spreadsheets.

A name, a note or a file's field may hold markup, a link or a formula; shown as it came it would run as a script
in a page or a map, draw a tracking image or a phishing link in markdown, or be evaluated by a spreadsheet. Each
sink has one function here, applied by default where the core writes that sink; the text still reads the same.

=====================  ==============================================================================
:func:`html_text`      the content of an HTML element (the bulletin, dossiers, SVG titles)
:func:`html_attr`      a quoted HTML attribute value
:func:`markdown_text`  Streamlit markdown (``st.markdown``, ``st.caption``, ``st.info``, labels, ...)
:func:`map_text`       Leaflet tooltips and popups, also inside folium's JavaScript template strings
:func:`sheet_cell`     a CSV or XLSX cell: text that a spreadsheet would take as a formula
=====================  ==============================================================================

Examples
--------
>>> html_text('<img src=x onerror=alert(1)>')
'&lt;img src=x onerror=alert(1)&gt;'
>>> markdown_text("![t](http://evil/p.png)")
'\\!\\[t\\]\\(http\\:\\/\\/evil\\/p\\.png\\)'
>>> sheet_cell('=HYPERLINK("http://evil/","x")')
'\'=HYPERLINK("http://evil/","x")'
"""

from __future__ import annotations

import html
import re
import string
from typing import Any

__all__ = ["html_text", "html_attr", "markdown_text", "map_text", "sheet_cell", "FORMULA_STARTS"]

#: first characters that make a spreadsheet read a cell as a formula (or a DDE call): ASCII and full-width
FORMULA_STARTS = frozenset("=+-@\t\r＝＋－＠")
#: blanks a spreadsheet may skip before it looks at the first character
_BLANKS = " \u3000\xa0"
#: every ASCII punctuation character: CommonMark lets each be escaped with a backslash, and escaping all of them
#: covers emphasis, links, images, headings, lists, tables, code, HTML, autolinks and Streamlit's ``:colour[...]``,
#: ``:emoji:`` and ``$math$``
_MARKDOWN = re.compile("([" + re.escape(string.punctuation) + "])")
#: characters that end or open a JavaScript template string (folium writes tooltip and popup text into one)
_SCRIPT_TEXT = str.maketrans({"`": "&#96;", "$": "&#36;", "\\": "&#92;", "{": "&#123;", "}": "&#125;"})


def _text(value: Any) -> str:
    """``value`` as text; None and missing values as the empty string."""
    if value is None:
        return ""
    try:
        if value != value:  # NaN, pandas' NA raises below
            return ""
    except (TypeError, ValueError):
        return ""
    return str(value)


def html_text(value: Any) -> str:
    """Text for the content of an HTML (or SVG) element: ``& < > " '`` become entities.

    Parameters
    ----------
    value : object
        The text (other values are shown as ``str(value)``; None and NaN as nothing).

    Returns
    -------
    str
        Text that a browser shows as it is and never parses as a tag.

    Examples
    --------
    >>> html_text("<script>alert(1)</script>")
    '&lt;script&gt;alert(1)&lt;/script&gt;'
    >>> html_text(None), html_text(float("nan")), html_text(3)
    ('', '', '3')
    """
    return html.escape(_text(value), quote=True)


def html_attr(value: Any) -> str:
    r"""Text for an HTML attribute value written between double quotes (``title="..."``).

    Besides the entities of :func:`html_text`, the backtick and line breaks become entities, so the value cannot
    end its quotes in any browser or spread over lines.

    Examples
    --------
    >>> html_attr('x" onmouseover="alert(1)')
    'x&quot; onmouseover=&quot;alert(1)'
    >>> html_attr("a`b\nc")
    'a&#96;b&#10;c'
    """
    return html_text(value).replace("`", "&#96;").replace("\n", "&#10;").replace("\r", "&#13;")


def markdown_text(value: Any) -> str:
    r"""Text for Streamlit markdown, shown literally: no link, image, emphasis, heading, list, HTML or math.

    Every ASCII punctuation character gets a backslash, which markdown removes when it renders: the reader sees
    the text as typed. Use it for any name, note or file text inside ``st.markdown``, ``st.caption``,
    ``st.info`` (and the other alerts), ``st.write`` of a string, and widget labels.

    Parameters
    ----------
    value : object
        The text (None and NaN give the empty string).

    Returns
    -------
    str
        The escaped text.

    Examples
    --------
    >>> markdown_text("[click](http://evil)")
    '\\[click\\]\\(http\\:\\/\\/evil\\)'
    >>> markdown_text("张三 **urgent** :red[x]")
    '张三 \\*\\*urgent\\*\\* \\:red\\[x\\]'
    """
    return _MARKDOWN.sub(r"\\\1", _text(value))


def map_text(value: Any) -> str:
    r"""Text for a Leaflet tooltip or popup as folium writes them: HTML-escaped, and inert in a JavaScript string.

    folium escapes nothing: ``GeoJsonTooltip`` and ``GeoJsonPopup`` put feature properties into the page with
    ``innerHTML``, and ``Tooltip``/``Popup`` copy their text into a JavaScript template string (where ``${...}``
    would run). Besides the entities of :func:`html_text`, the characters of template strings (`` ` $ \ { }``)
    become entities here; Leaflet shows them as typed.

    Examples
    --------
    >>> map_text("<img src=x onerror=alert(1)>${alert(2)}`")
    '&lt;img src=x onerror=alert(1)&gt;&#36;&#123;alert(2)&#125;&#96;'
    """
    return html_text(value).translate(_SCRIPT_TEXT)


def sheet_cell(value: Any) -> Any:
    r"""A CSV or XLSX cell value that no spreadsheet takes as a formula; numbers, dates and None stay as they are.

    Text whose first character (after blanks) is ``= + - @``, a tab, a carriage return or a full-width
    ``＝ ＋ － ＠`` gets a leading ``'``, which spreadsheets read as "text follows"; other text is unchanged.

    Parameters
    ----------
    value : object
        A cell value.

    Returns
    -------
    object
        ``value``, or for risky text the text with ``'`` in front.

    Examples
    --------
    >>> [sheet_cell(v) for v in ["@SUM(1)", "+1", "-1+2", "\t=1", "＝1+1", " =1", "伊川县", -1, 2.5, None]]
    ["'@SUM(1)", "'+1", "'-1+2", "'\t=1", "'＝1+1", "' =1", '伊川县', -1, 2.5, None]
    """
    if not isinstance(value, str):
        return value
    return "'" + value if value.lstrip(_BLANKS)[:1] in FORMULA_STARTS else value
