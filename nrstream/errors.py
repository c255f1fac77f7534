"""Errors meant for users: the CLI prints them as one line and exits with code 2."""

from __future__ import annotations

__all__ = [
    "NrstreamError",
    "PluginError",
    "ConfigError",
    "PluginOptionError",
    "DataNotFoundError",
    "DataFileError",
    "DownloadError",
]


class NrstreamError(Exception):
    """A problem the user can fix; its message is one line that says what to do."""


class PluginError(NrstreamError):
    """A plugin failed to load, broke a hook contract, or reused a taken name."""


class ConfigError(NrstreamError):
    """A config file names an unknown key or plugin, or has a value of the wrong type."""


class PluginOptionError(ConfigError, ValueError):
    """A plugin's factory rejected the options a config gave it (names the plugin)."""


class DataNotFoundError(NrstreamError):
    """A data source could not find its files; the message lists where it looked."""


class DataFileError(NrstreamError):
    """A data file exists but cannot be read (truncated, corrupt, wrong format); names the file."""


class DownloadError(NrstreamError):
    """A download failed or its checksum did not match."""
