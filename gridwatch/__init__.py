"""gridwatch: grid supervision (网格化监管) for air-quality work on an H3 grid over administrative units."""

__version__ = "0.1.0"
