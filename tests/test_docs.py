"""Documentation stays true: every hook is documented, every command is listed."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from nrstream import cli
from nrstream.plugin import hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("nrstream_")]


def test_there_are_four_hooks():
    assert sorted(HOOKS) == sorted(
        [
            "nrstream_register_architectures",
            "nrstream_register_losses",
            "nrstream_register_metrics",
            "nrstream_register_data_sources",
        ]
    )


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_docstring_and_is_in_contributing(hook):
    assert (getattr(hookspecs, hook).__doc__ or "").strip(), f"{hook} has no docstring"
    assert hook in (ROOT / "CONTRIBUTING.md").read_text(), f"{hook} is not in CONTRIBUTING.md"


@pytest.mark.parametrize("command", cli.COMMANDS)
def test_every_command_is_documented_in_readme(command):
    assert f"nrstream {command}" in (ROOT / "README.md").read_text(), f"`nrstream {command}` is not in README.md"


def _key_paths(cls, prefix: str = "") -> list[str]:
    """Every key a config file may hold, from the dataclasses (so a new field is a new key)."""
    import dataclasses
    import typing

    from nrstream.lab.config import _NOT_KEYS, AgentConfig

    paths = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in _NOT_KEYS:
            continue
        key = f"{prefix}{f.name}"
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            paths += _key_paths(hint, f"{key}.")
        elif f.name == "agents":
            paths += ["agents", "agents.archs", "agents.losses"]
            paths += [f"agents[i].{g.name}" for g in dataclasses.fields(AgentConfig)]
        else:
            paths.append(key)
    return paths


def _documented_rows() -> dict[str, list[str]]:
    from nrstream.lab import config
    rows = {}
    for line in config.__doc__.splitlines():
        if line.strip() and not line.startswith((" ", "=")):
            rows[line.split()[0]] = line.split()
    return rows


def test_every_config_key_is_documented():
    """The key table in nrstream.lab.config's docstring (generated from the schema) names every key (datasette's)."""
    from nrstream.lab.config import Config

    keys = _key_paths(Config)
    assert "run.seeds" in keys and "run.resources.num_gpus" in keys and "data.stream.noise_scale" in keys
    missing = [key for key in keys if key not in _documented_rows()]
    assert not missing, f"undocumented config keys (give them key(doc=...) in nrstream/lab/config/schema.py): {missing}"


def test_the_table_documents_no_key_that_does_not_exist():
    from nrstream.lab.config import Config

    keys = set(_key_paths(Config))
    table = [k for k in _documented_rows() if "." in k or k == "agents"]
    table = [
        k
        for k in table
        if k[0].islower() and k.split(".")[0].split("[")[0] in ("run", "data", "agents", "train", "evaluate")
    ]
    stale = [k for k in table if k not in keys and not k.endswith(".*")]
    assert not stale, f"the key table of nrstream.lab.config documents keys that do not exist: {stale}"


def test_stream_keys_and_their_defaults_come_from_stream_settings():
    """``data.stream.*`` rows are generated from StreamSettings: its defaults are the documented ones."""
    import dataclasses

    from nrstream.stream.settings import StreamSettings

    rows = _documented_rows()
    for f in dataclasses.fields(StreamSettings):
        row = rows[f"data.stream.{f.name}"]
        assert f.metadata.get("doc") and f.metadata.get("type"), f"StreamSettings.{f.name} needs metadata type/doc"
        assert str(f.default) in " ".join(row), f"data.stream.{f.name}: documented default is not {f.default}"
