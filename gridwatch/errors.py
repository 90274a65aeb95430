"""Errors raised by gridwatch, one root with a few subclasses that mix in builtins.

Every error carries an English message template (the gettext msgid) and the
values that fill it, so the same error can be shown in the user's language
(:func:`gridwatch.i18n.translate_error`) while ``str(error)`` stays readable in
logs and tests.

Examples
--------
>>> err = ValidationError("Unknown field {field!r} in {file}.", field="code", file="a.geojson")
>>> str(err)
"Unknown field 'code' in a.geojson."
>>> isinstance(err, ValueError)
True
"""

from __future__ import annotations

import errno
from typing import Any

__all__ = [
    "GridwatchError",
    "ValidationError",
    "NotFound",
    "PermissionDenied",
    "InvalidTransition",
    "CRSError",
    "StorageError",
    "OutsideRegion",
    "Conflict",
    "DiskFull",
    "is_disk_full",
]


class GridwatchError(Exception):
    """Root of every gridwatch error.

    Parameters
    ----------
    template : str
        The message in English with ``str.format`` fields; it is also the
        msgid looked up in the translation catalogs.
    **params
        Values for the fields of ``template``.
    """

    #: process exit status used by the CLI for this kind of error
    exit_code = 2

    def __init__(self, template: str, /, **params: Any) -> None:
        self.template = template
        self.params = params
        super().__init__(self.render(template))

    def render(self, template: str) -> str:
        """Fill ``template`` (an English or translated msgid) with the params."""
        try:
            return template.format(**self.params)
        except (KeyError, IndexError, ValueError):
            return template


class ValidationError(GridwatchError, ValueError):
    """Input that cannot be accepted as given (a file, a field, a value)."""


class NotFound(GridwatchError, LookupError):
    """A unit, person, cell or record that does not exist."""


class PermissionDenied(GridwatchError, PermissionError):
    """The user may not do this."""

    exit_code = 4


class InvalidTransition(GridwatchError, ValueError):
    """A task state change the state machine does not allow."""


class CRSError(GridwatchError, ValueError):
    """A coordinate reference system that is missing, unknown or mismatched."""


class StorageError(GridwatchError, RuntimeError):
    """The database refused or failed an operation."""


class OutsideRegion(NotFound):
    """A point or cell outside the configured region's grid."""

    exit_code = 3


class Conflict(InvalidTransition):
    """Someone else changed the record first; the attempt was kept, not applied."""

    exit_code = 5


def N_(message: str) -> str:  # noqa: N802 - the name the message extractor looks for
    """Mark a message for translation where it is defined (this leaf module cannot import :mod:`gridwatch.i18n`)."""
    return message


class DiskFull(StorageError):
    """A write failed because the disk (or the file size the system allows) is full; nothing was stored."""

    exit_code = 7
    MESSAGE = N_("The disk is full, so nothing was stored. Free space on the server (or ask an administrator to), "
                 "then try again.")

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)


#: what a full disk, a quota or a file grown past the system's limit say, in every layer that may report it
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)})
_FULL_TEXTS = ("no space left on device", "file too large", "disk quota exceeded", "could not extend file")


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an error that caused it, says the disk is full.

    ENOSPC, EFBIG (a file grown past the size the system allows counts the same) and EDQUOT; DuckDB's and other
    libraries' texts for them; PostgreSQL's ``disk_full`` (SQLSTATE 53100).

    Examples
    --------
    >>> is_disk_full(OSError(errno.ENOSPC, "No space left on device")), is_disk_full(ValueError("x"))
    (True, False)
    >>> try:
    ...     raise RuntimeError("wrapped") from OSError(errno.EFBIG, "File too large")
    ... except RuntimeError as exc:
    ...     is_disk_full(exc)
    True
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DiskFull):
            return True
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
            return True
        if getattr(exc, "sqlstate", None) == "53100":
            return True
        if any(text in str(exc).lower() for text in _FULL_TEXTS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
