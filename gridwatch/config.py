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


#: the settings that bound what one upload may make a reader do, and their types
_LIMITS = {"max_upload_mb": float, "archive_max_unpacked_mb": float, "archive_max_entries": int,
           "kml_max_mb": float, "photo_max_mb": float, "photo_max_megapixels": float, "photo_max_count": int,
           "photo_max_total_mb": float}


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
    basemap_url : str
        XYZ tile template for maps (WGS84/CGCS2000 tiles; GCJ-02 tiles would sit ≈500 m off); empty means none.
    basemap_attribution : str
        Attribution shown on the map for ``basemap_url``.
    tianditu_key : str
        A Tianditu key: with no ``basemap_url``, maps use Tianditu's vector tiles and labels.
    backup_dir : str
        Where the administrators' "back up now" writes its folders.
    max_upload_mb : float
        Largest file accepted by any upload or load, checked before the file is read.
    archive_max_unpacked_mb : float
        Largest total an archive (zip, KMZ, zipped Shapefile) may unpack to: checked on its directory before
        anything is unpacked, and again while unpacking.
    archive_max_entries : int
        Most files an archive may hold.
    kml_max_mb : float
        Largest KML document read (a ``.kml``, or the one inside a KMZ): GDAL holds a KML whole in memory, at about
        fifteen times its size.
    photo_max_mb : float
        Largest photo accepted.
    photo_max_megapixels : float
        Most pixels a photo may have, read from its header before it is decoded.
    photo_max_count : int
        Most photos one report from the field may carry.
    photo_max_total_mb : float
        Largest total size of the photos of one report.
    report_weights : str or mapping
        Weights of the ranking score, ``metric=weight,...`` (lower score ranks first).
    report_thresholds : str or mapping
        Accountability thresholds on ``report_threshold_metric`` per period:
        ``notice`` (通报), ``interview_deputy`` (约谈分管负责人), ``interview_principal`` (约谈主要负责人). The plans
        name these measures but give no thresholds: empty (the default) means none is applied; a county that sets
        them enters their document in ``rule_documents``.
    report_deduction_yuan : float
        Fiscal deduction per fire point; the plans give no amount: 0 (the default) means none.
    report_seasons : str
        Harvest seasons ``name=MM-DD..MM-DD,...``; empty uses the dispatch key periods.
    key_periods : str or mapping
        Key periods of straw burning, ``name=MM-DD..MM-DD,...`` or a table ``{summer_harvest = "05-25..06-30"}``
        (a period may cross the new year). The plans name the summer and autumn harvests, 秋冬季节 and 春耕期间
        but give no dates: empty (the default) means no key period; a county that sets them enters their document
        in ``rule_documents``.
    rule_documents : mapping
        The document number the county entered for each local setting (本地设置), by setting name; shown with the
        rule wherever it is applied (``python -m gridwatch rules``).
    rule_since : str or mapping
        The day each local setting took effect (its document's date), by setting name, e.g. ``{report_thresholds =
        "2026-03-01"}`` or ``report_thresholds=2026-03-01``; shown with the rule. A plan's rule is in force since its
        plan's date.
    api_max_body_kb : float
        Largest request body the HTTP API reads (KB); a larger one is refused before it is read (413).
    api_alarm_batch : int
        Most alarms the HTTP API stores in one transaction (those that arrive together are stored together).
    sla_step_hours : str or mapping
        Hours an overdue task may sit at each escalation step before it climbs again, by level (``village``,
        ``township``, ``county``, ``city``), e.g. ``{village = 24, township = 24, county = 48, city = 72}`` or
        ``village=24,township=24``. No plan gives these hours (本地设置): a level left out keeps the hours of the
        task's kind.
    required_roles : str or mapping
        The roles of 一长三员 (``grid_leader``, ``grid_member``, ``inspector``, ``supervisor``) each unit of a level
        must hold, and each cell (``cell``: held on the cell or a unit owning it), e.g. ``{village = ["grid_leader",
        "inspector", "supervisor"], cell = ["inspector"]}`` or ``village=grid_leader+inspector,cell=inspector``.
        Empty (the default): a grid leader on every unit and an inspector on every cell.
    conflicting_roles : str
        ``warn`` (the default) or ``refuse``: what giving a person a role that conflicts with one they hold does
        (a supervisor supervising their own work as inspector, grid member or grid leader).
    problem_rectify_days : str or mapping
        Days to rectify a problem, per category (``bare_land=30,coal_boiler=30,...``); the plans give none: empty
        (the default) means no deadline and nothing overdue (``gridwatch.problems``).
    problem_repeat_days : int
        A problem found at the same cell and category within this many days after an earlier one is a repeat
        (屡查屡犯); 0 (the default) means none is marked.
    problem_recheck_days : int
        Days after its closing when a closed problem gets a re-check patrol (回头看); 0 (the default) means none.
    """

    db: str = str(DEFAULT_DB_PATH)
    region: str = "410329"
    resolution: int = 8
    language: str = "zh_CN"
    basemap_url: str = ""
    basemap_attribution: str = ""
    tianditu_key: str = ""
    backup_dir: str = str(REPO_ROOT / "data" / "backups")
    max_upload_mb: float = 200.0
    # what one upload may make a reader do (gridwatch.ingest, gridwatch.photos)
    archive_max_unpacked_mb: float = 500.0
    archive_max_entries: int = 10_000
    kml_max_mb: float = 30.0
    photo_max_mb: float = 15.0
    photo_max_megapixels: float = 60.0
    photo_max_count: int = 10
    photo_max_total_mb: float = 80.0
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
    # heat supply and bare land (gridwatch.heat, gridwatch.bare)
    heat_min_chp_mw: float = 300.0
    heat_radius_km: float = 30.0
    heat_small_boiler_tph: float = 35.0
    heat_boiler_deadline: str = "2025-12-31"
    bare_land_months: int = 3
    bare_land_min_m2: float = 400.0
    # no-burn zones (gridwatch.zones): days between the recurring coal checks (回头看) of zone cells
    coal_check_cadence_days: int = 30
    # reports (gridwatch.reports): the ranking score, accountability thresholds, fiscal deduction, seasons
    report_weights: str | Mapping[str, float] = "fire_points=1,confirmed=1,tasks_overdue=0.5"
    report_thresholds: str | Mapping[str, float] = ""
    report_threshold_metric: str = "fire_points"
    report_deduction_yuan: float = 0.0
    report_seasons: str = ""
    # key periods of straw burning (gridwatch.policy): local settings, none by default
    key_periods: str | Mapping[str, str] = ""
    # the document (文号) behind each local setting (本地设置), by setting name
    rule_documents: Mapping[str, str] = field(default_factory=dict)
    rule_since: str | Mapping[str, str] = ""
    # the HTTP API (gridwatch.api): request bodies, and alarms stored per transaction
    api_max_body_kb: float = 64.0
    api_alarm_batch: int = 200
    # the responsibility chain (gridwatch.org): hours per escalation step, the roles a unit must hold, conflicts
    sla_step_hours: str | Mapping[str, float] = field(default_factory=dict)
    required_roles: str | Mapping[str, Any] = field(default_factory=dict)
    conflicting_roles: str = "warn"
    # the problem register (gridwatch.problems): no plan gives these numbers; off until a county sets them
    problem_rectify_days: str | Mapping[str, float] = ""
    problem_repeat_days: int = 0
    problem_recheck_days: int = 0

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
        limits = {}
        for name, kind in _LIMITS.items():
            value = getattr(self, name)
            try:
                limits[name] = kind(value)
            except (TypeError, ValueError):
                limits[name] = 0
            if limits[name] <= 0 and kind is int:
                raise ValidationError("The setting {name} is {value!r}; give a whole number above 0.", name=name,
                                      value=value)
            if limits[name] <= 0:
                raise ValidationError("The setting {name} is {value!r}; give a number above 0.", name=name,
                                      value=value)
        return replace(self, resolution=resolution, region=str(self.region), firms_interval_minutes=interval,
                       firms_days=days, **limits)
