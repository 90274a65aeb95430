"""Settings from a TOML file and the environment.

Precedence, lowest first: built-in defaults, the TOML file (``GRIDWATCH_CONFIG``
or ``gridwatch.toml`` in the working directory), then ``GRIDWATCH_*``
environment variables, then explicit keyword arguments (the CLI's flags).

Examples
--------
>>> s = Settings.load(env={}, config_path=None)
>>> s.resolution, s.language
(8, 'zh_CN')
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from gridwatch.errors import ValidationError

__all__ = ["Settings", "DEFAULT_DB_PATH", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB_PATH = REPO_ROOT / "data" / "gridwatch.duckdb"


@dataclass(frozen=True)
class Settings:
    """Runtime settings of one gridwatch process.

    Attributes
    ----------
    db : str
        ``:memory:``, a DuckDB file path, or a ``postgresql://`` URL.
    region : str
        Code of the administrative unit the grid covers (e.g. ``410329``).
    resolution : int
        H3 resolution of the grid (8 ≈ 0.6 km² in Henan).
    language : str
        ``zh_CN`` (default) or ``en``.
    timezone : str
        Zone in which dates are shown and periods cut.
    basemap_url : str
        XYZ tile template for maps; empty means no basemap.
    """

    db: str = str(DEFAULT_DB_PATH)
    region: str = "410329"
    resolution: int = 8
    language: str = "zh_CN"
    timezone: str = "Asia/Shanghai"
    basemap_url: str = ""
    basemap_attribution: str = ""
    sla_hours: Mapping[str, float] = field(default_factory=dict)
    firms_map_key: str = ""
    firms_base_url: str = "https://firms.modaps.eosdis.nasa.gov"
    firms_sources: str = "VIIRS_SNPP_NRT,VIIRS_NOAA20_NRT,VIIRS_NOAA21_NRT,MODIS_NRT"
    firms_interval_minutes: float = 30.0
    firms_days: int = 1
    notify_webhook_url: str = ""
    notify_kind: str = "json"
    notify_secret: str = ""
    notify_interval_minutes: float = 5.0
    notify_due_soon_hours: float = 2.0

    @classmethod
    def load(
        cls,
        *,
        env: Mapping[str, str] | None = None,
        config_path: str | Path | None | bool = True,
        **overrides: Any,
    ) -> "Settings":
        """Build settings from defaults, a TOML file, the environment and overrides.

        Parameters
        ----------
        env : mapping, optional
            Environment to read ``GRIDWATCH_*`` from (default ``os.environ``).
        config_path : path, None or True
            TOML file; ``True`` looks up ``GRIDWATCH_CONFIG`` then
            ``./gridwatch.toml``; ``None`` reads no file.
        **overrides
            Values that win over everything else; ``None`` values are ignored.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        if config_path is True:
            candidate = env.get("GRIDWATCH_CONFIG") or "gridwatch.toml"
            config_path = candidate if Path(candidate).is_file() else None
        if config_path:
            path = Path(config_path)
            try:
                values.update(tomllib.loads(path.read_text(encoding="utf-8")).get("gridwatch", {}))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ValidationError(
                    "Cannot read the settings file {file}: {reason}", file=str(path), reason=str(exc)
                ) from exc
        known = {f.name for f in fields(cls)}
        for name in known:
            key = f"GRIDWATCH_{name.upper()}"
            if key in env and env[key] != "":
                values[name] = env[key]
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - known
        if unknown:
            raise ValidationError(
                "Unknown setting(s) {names}; known settings are {known}.",
                names=", ".join(sorted(unknown)),
                known=", ".join(sorted(known)),
            )
        settings = replace(cls(), **values)
        return settings._checked()

    def _checked(self) -> "Settings":
        try:
            resolution = int(self.resolution)
        except (TypeError, ValueError):
            resolution = -1
        if not 5 <= resolution <= 11:
            raise ValidationError(
                "Grid resolution {value} is not supported; use a whole number from 5 to 11 (8 is the 1 km grid).",
                value=self.resolution,
            )
        if self.language not in ("zh_CN", "en"):
            raise ValidationError("Unknown language {value}; use zh_CN or en.", value=self.language)
        try:
            interval, days = float(self.firms_interval_minutes), int(self.firms_days)
        except (TypeError, ValueError) as exc:
            raise ValidationError("FIRMS fetch settings must be numbers (interval {interval}, days {days}).",
                                  interval=self.firms_interval_minutes, days=self.firms_days) from exc
        return replace(self, resolution=resolution, region=str(self.region), firms_interval_minutes=interval,
                       firms_days=days)
