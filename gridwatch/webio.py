"""What the HTTP clients (FIRMS, webhooks) share: one exchange's answer, its verdict, and quoting of bodies."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Answer", "Verdict", "clip", "QUOTE_CHARS"]

#: how much of a remote answer a message quotes
QUOTE_CHARS = 120


@dataclass(frozen=True)
class Answer:
    """One HTTP exchange: status, headers and body, or the transport failure."""

    http_status: int | None
    body: bytes = b""
    retry_after: str | None = None
    failure: str | None = None  # "timeout" or "error" when no HTTP answer came
    detail: str = ""


@dataclass(frozen=True)
class Verdict:
    """What an answer means: a status, a message, whether to retry within the call (and rows for CSV answers)."""

    status: str
    message: str
    retry: bool = False
    rows: int = 0


def clip(text: str, limit: int = QUOTE_CHARS) -> str:
    """Text on one line, shortened to ``limit`` characters.

    Examples
    --------
    >>> clip("a\\n b", 10), clip("x" * 5, 3)
    ('a b', 'xx…')
    """
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
