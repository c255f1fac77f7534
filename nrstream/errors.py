"""Errors meant for users: the CLI prints them as one line and exits with code 2."""

from __future__ import annotations

__all__ = [
    "NrstreamError",
    "PluginError",
    "ConfigError",
    "OptionError",
    "PluginOptionError",
    "DataNotFoundError",
    "DataFileError",
    "DownloadError",
    "NonFiniteError",
]


class NrstreamError(Exception):
    """A problem the user can fix; its message is one line that says what to do."""


class PluginError(NrstreamError):
    """A plugin failed to load, broke a hook contract, or reused a taken name."""


class ConfigError(NrstreamError):
    """A config file names an unknown key or plugin, or has a value of the wrong type."""


class OptionError(ConfigError, ValueError):
    """A component (architecture, loss, metric, data source) rejects an option it was given.

    The one option-error class: plugin factories raise it for a bad value, the registry
    raises it for an unknown option or one of the wrong type. A ``ValueError`` too, as torch
    users expect. ``option`` names the offending option when one is to blame, so that the
    config loader can point at its key (``agents.archs[0].options.hidden_size``).
    """

    def __init__(self, message: str, *, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


#: old name of :class:`OptionError` (kept for one release)
PluginOptionError = OptionError


class DataNotFoundError(NrstreamError):
    """A data source could not find its files; the message lists where it looked."""


class DataFileError(NrstreamError):
    """A data file exists but cannot be read (truncated, corrupt, wrong format); names the file."""


class DownloadError(NrstreamError):
    """A download failed or its checksum did not match."""


class NonFiniteError(NrstreamError):
    """A loss, logit or recurrent state became NaN or infinite during training or evaluation.

    ``where`` says which step or chunk; callers that know the agent prefix its label with
    :meth:`for_agent`, so the one line names the agent, the step and the likely cause.
    """

    def for_agent(self, label: str) -> NonFiniteError:
        text = str(self)
        return self if text.startswith(label + ":") else NonFiniteError(f"{label}: {text}")
