"""Translation catalogs (gettext .po files), one folder per language."""
