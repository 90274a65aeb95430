"""The layer protocol: what a spatial layer reader takes and what it hands back.

A layer turns one source file (a path or its bytes) into a :class:`LayerRead`:
the accepted rows as a DataFrame, the rejected rows with their line numbers,
reason codes, English messages and original text, the number of data rows read
and any warnings. Readers never stop at a bad row; they stop only when the file
as a whole cannot be that layer (and then raise
:class:`gridwatch.errors.ValidationError`).

Examples
--------
>>> result = LayerRead(source="a.csv", frame=pd.DataFrame({"x": [1]}), rejected=empty_rejected(), read=1)
>>> result.accepted, len(result.rejected), list(result.rejected.columns)
(1, 0, ['line', 'reason', 'message', 'raw'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

__all__ = ["REJECTED_COLUMNS", "Layer", "LayerRead", "N_", "attribute_column", "empty_rejected",
           "rejected_frame"]


def N_(message: str) -> str:  # noqa: N802 - the gettext convention
    """Mark a message for extraction into the translation catalog (it is translated where it is shown)."""
    return message

#: columns of :attr:`LayerRead.rejected`, in order
REJECTED_COLUMNS = ("line", "reason", "message", "raw")


def rejected_frame(line: Any, reason: Any, message: Any, raw: Any) -> pd.DataFrame:
    """Build a rejected-rows frame with the standard columns and dtypes, sorted by line.

    Parameters
    ----------
    line : array-like of int
        1-based line numbers in the source file (the header is line 1).
    reason : array-like of str
        Reason codes (stable identifiers, for example ``"bad_time"``).
    message : array-like of str
        English explanations, one per row.
    raw : array-like of str
        The original text of each line, without its line ending.

    Returns
    -------
    DataFrame
        Columns ``line`` (int64), ``reason``, ``message``, ``raw`` (str).
    """
    frame = pd.DataFrame({
        "line": np.asarray(line, dtype=np.int64),
        "reason": pd.array(list(reason), dtype="str"),
        "message": pd.array(list(message), dtype="str"),
        "raw": pd.array(list(raw), dtype="str"),
    })
    return frame.sort_values("line", kind="stable", ignore_index=True)


def attribute_column(attributes: pd.DataFrame, wanted: str | None, names: tuple[str, ...]) -> str | None:
    """The attribute column to read: ``wanted`` when given (None if the file lacks it), else the first of ``names``
    present, compared without case or surrounding blanks.

    Examples
    --------
    >>> attribute_column(pd.DataFrame(columns=[" Name ", "kind"]), None, ("名称", "name"))
    ' Name '
    """
    if wanted is not None:
        return wanted if wanted in attributes.columns else None
    lowered = {str(c).strip().lower(): c for c in attributes.columns}
    return next((lowered[n] for n in names if n in lowered), None)


def empty_rejected() -> pd.DataFrame:
    """Return a rejected-rows frame with no rows (standard columns and dtypes)."""
    return rejected_frame([], [], [], [])


@dataclass
class LayerRead:
    """What a layer reader returns for one source.

    Attributes
    ----------
    source : str
        The name the source is reported under (its path or the name given).
    frame : DataFrame
        The accepted rows, in file order.
    rejected : DataFrame
        The rejected rows: ``line`` (int, 1-based, header = line 1), ``reason``
        (a code), ``message`` (English text) and ``raw`` (the original line).
    read : int
        Data rows read: accepted + rejected (blank lines are not rows).
    warnings : list of str
        File-level remarks in English (absent optional columns, skipped blank lines, ...).
    """

    source: str
    frame: pd.DataFrame
    rejected: pd.DataFrame
    read: int
    warnings: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        """Number of accepted rows."""
        return len(self.frame)


@runtime_checkable
class Layer(Protocol):
    """A spatial layer reader.

    Attributes
    ----------
    kind : str
        The layer's identifier, for example ``"fire_points"``.
    """

    kind: str

    def read(self, source: Path | bytes, /, *, name: str | None = None, **options: Any) -> LayerRead:
        """Read one source file (a path or its bytes) into a :class:`LayerRead`.

        Parameters
        ----------
        source : Path or bytes
            The file, or its content.
        name : str, optional
            The name to report the source under (defaults to the path, or ``"<bytes>"``).
        **options
            Layer-specific options.

        Returns
        -------
        LayerRead
        """
        ...
