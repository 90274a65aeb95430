"""Benchmarks of gridwatch (``make bench``, or ``python -m benchmarks [NAME]``).

Each benchmark is a function in a ``benchmarks/bench_*.py`` module, registered
with :func:`benchmark`. It does its own set-up outside the timing, times our
code and a baseline in the same run, and returns a :class:`Result`; the
harness (``benchmarks/__main__.py``) prints one line per benchmark and a
target check, and writes ``benchmarks/results/<name>.json``.

Ratio convention: ``ratio = our time / baseline time`` for every benchmark,
so lower is better. Time benchmarks print figures in ``s``; throughput
benchmarks print ``points/s``, whose ratio ``baseline throughput / our
throughput`` is the same time ratio (the same points are processed by both).
Size benchmarks print ``bytes`` (the measurement's ``size``) and their ratio
is our size / baseline size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["BENCHMARKS", "Measurement", "Result", "Target", "benchmark"]


@dataclass(frozen=True)
class Measurement:
    """One timed subject: a median time in seconds over ``repeats`` runs.

    ``items`` (e.g. points processed per run) turns the time into a
    throughput figure when the benchmark reports one.
    """

    name: str
    seconds: float
    repeats: int
    samples: tuple[float, ...] = ()
    items: int | None = None
    #: median process CPU time (all threads) over the same runs: less sensitive to a busy machine
    cpu_seconds: float | None = None
    #: a size in bytes, for size benchmarks (unit ``bytes``)
    size: float | None = None
    #: what the last timed call returned (e.g. the Grid), for details; not written to JSON
    value: object = field(default=None, repr=False, compare=False)

    def figure(self, unit: str) -> float:
        """The printed figure: seconds for ``s``, items per second otherwise."""
        if unit == "s":
            return self.seconds
        if unit == "bytes":
            if self.size is None:
                raise ValueError(f"{self.name}: a size figure needs size")
            return self.size
        if not self.items:
            raise ValueError(f"{self.name}: a throughput figure needs items")
        return self.items / self.seconds


@dataclass(frozen=True)
class Target:
    """What the benchmark should reach; information only, never fails a run.

    ``max_seconds`` / ``min_throughput`` bound our figure, ``max_ratio`` bounds
    our time / baseline time; ``note`` is appended to the printed text (e.g.
    ``"ratio informational"``).
    """

    max_seconds: float | None = None
    min_throughput: float | None = None
    max_ratio: float | None = None
    max_size: float | None = None
    note: str = ""

    def text(self, unit: str) -> str:
        parts = []
        if self.max_seconds is not None:
            parts.append(f"≤ {self.max_seconds:g} s")
        if self.min_throughput is not None:
            parts.append(f"≥ {self.min_throughput:.3g} {unit}")
        if self.max_size is not None:
            parts.append(f"≤ {self.max_size:.4g} bytes")
        if self.max_ratio is not None:
            parts.append(f"ratio ≤ {self.max_ratio:g}")
        out = " and ".join(parts) or "none"
        return f"{out} ({self.note})" if self.note else out

    def met(self, ours: Measurement, ratio: float) -> bool:
        ok = True
        if self.max_seconds is not None:
            ok &= ours.seconds <= self.max_seconds
        if self.min_throughput is not None:
            ok &= bool(ours.items) and ours.items / ours.seconds >= self.min_throughput
        if self.max_size is not None:
            ok &= ours.size is not None and ours.size <= self.max_size
        if self.max_ratio is not None:
            ok &= ratio <= self.max_ratio
        return bool(ok)


@dataclass(frozen=True)
class Result:
    """What a benchmark returns: our measurement, the baseline's, the unit and the target."""

    ours: Measurement
    baseline: Measurement
    target: Target
    unit: str = "s"  # "s" or a throughput unit such as "points/s"
    details: dict | None = None  # extra facts for the JSON (cell counts, candidate baselines, ...)

    @property
    def ratio(self) -> float:
        """Our time / baseline time (lower is better); our size / baseline size for ``bytes``."""
        if self.unit == "bytes":
            return self.ours.size / self.baseline.size
        return self.ours.seconds / self.baseline.seconds


#: name -> benchmark function, filled by :func:`benchmark` when bench modules are imported
BENCHMARKS: dict[str, Callable[[], Result]] = {}


def benchmark(fn: Callable[[], Result]) -> Callable[[], Result]:
    """Register ``fn`` under its own name."""
    if fn.__name__ in BENCHMARKS:
        raise ValueError(f"duplicate benchmark name {fn.__name__!r}")
    BENCHMARKS[fn.__name__] = fn
    return fn
