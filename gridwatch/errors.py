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
