"""Run the benchmarks: ``python -m benchmarks [NAME]`` (all when no name is given).

Prints, per benchmark::

    bench <name>: <figure> <unit>; baseline <baseline>: <figure> <unit>; ratio <our time / baseline time>
      target: <text> — met | NOT met

and writes the same to ``benchmarks/results/<name>.json``. Targets are
information only: the exit status is 0 whether or not they are met (2 for an
unknown benchmark name).
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import benchmarks
from benchmarks import BENCHMARKS, Result

RESULTS = Path(__file__).resolve().parent / "results"


def discover() -> dict:
    """Import every ``benchmarks/bench_*.py`` module; their functions register themselves."""
    for mod in sorted(pkgutil.iter_modules(benchmarks.__path__), key=lambda m: m.name):
        if mod.name.startswith("bench_"):
            importlib.import_module(f"benchmarks.{mod.name}")
    return BENCHMARKS


def _fig(x: float) -> str:
    return f"{x:.3g}"


def machine() -> dict:
    import h3

    info = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "h3": h3.__version__,
    }
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    return info


def report(name: str, result: Result) -> dict:
    """Print the two lines of ``result`` and return its JSON record."""
    unit = result.unit
    ours, base = result.ours.figure(unit), result.baseline.figure(unit)
    ratio = round(result.ratio, 3)
    target_text = result.target.text(unit)
    met = result.target.met(result.ours, result.ratio)
    print(f"bench {name}: {_fig(ours)} {unit}; baseline {result.baseline.name}: {_fig(base)} {unit}; ratio {ratio}")
    print(f"  target: {target_text} — {'met' if met else 'NOT met'}", flush=True)
    return {
        "name": name,
        "figure": ours,
        "unit": unit,
        "seconds": result.ours.seconds,
        "samples": list(result.ours.samples),
        "cpu_seconds": result.ours.cpu_seconds,
        "repeats": result.ours.repeats,
        "baseline": {
            "name": result.baseline.name,
            "figure": base,
            "unit": unit,
            "seconds": result.baseline.seconds,
            "samples": list(result.baseline.samples),
            "cpu_seconds": result.baseline.cpu_seconds,
            "repeats": result.baseline.repeats,
        },
        "ratio": ratio,
        "ratio_definition": ("our size / baseline size" if unit == "bytes" else "our time / baseline time")
        + " (lower is better)",
        "target": target_text,
        "met": met,
        "details": result.details or {},
        "machine": machine(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def main(argv: list[str]) -> int:
    found = discover()
    if argv and argv[0]:
        if argv[0] not in found:
            print(f"unknown benchmark {argv[0]!r}; known: {', '.join(found)}", file=sys.stderr)
            return 2
        names = [argv[0]]
    else:
        names = list(found)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in names:
        record = report(name, found[name]())
        (RESULTS / f"{name}.json").write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n",
                                              encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
