"""Checkpoint identity: the hash of what decides an agent's trained weights, read from the fields.

Each key's rule is its field's ``identity`` (:func:`nrstream.lab.config.schema.key`), else
its section's ``identity_rule``:
``True`` (always in the hash), ``False`` (never: run name, output folders, device, executor,
progress bars, checkpoint cadence, the whole ``evaluate`` section), or ``"unless_default"``
(only when it differs from its default: keys added after checkpoints existed, whose
default keeps those checkpoints' keys). ``data.stream`` contributes
:meth:`StreamSettings.identity`. A checkpoint folder is named by this hash, so a change
here retrains everything: ``tests/test_config.py`` pins the keys of every bundled config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from nrstream.lab.config.schema import _NOT_KEYS, AgentConfig, Config

__all__ = ["identity", "agent_key", "config_to_dict"]


def _default(f: dataclasses.Field) -> Any:
    return f.default if f.default_factory is dataclasses.MISSING else f.default_factory()


def identity(section: Any) -> dict[str, Any]:
    """The values of ``section`` (a config section) that its fields' ``identity`` rules keep, as plain data."""
    if callable(getattr(type(section), "identity", None)):  # a section with its own rule (StreamSettings)
        return section.identity()
    plain, out = dataclasses.asdict(section), {}
    for f in dataclasses.fields(section):
        rule, value = f.metadata.get("identity"), getattr(section, f.name)
        if rule is None:
            rule = getattr(section, "identity_rule", "unless_default")
        if rule is True or (rule == "unless_default" and value != _default(f)):
            out[f.name] = identity(value) if dataclasses.is_dataclass(value) else plain[f.name]
    return out


def agent_key(config: Config, agent: AgentConfig, served: dict | None = None, *, seed: int | None = None) -> str:
    """A hash (16 hex digits) of everything that decides an agent's trained weights.

    Changing a key whose rule leaves it out (run name, device, ``evaluate``...) reuses
    trained checkpoints. ``served`` (the data source that actually loaded, and its options)
    replaces the configured source so that a fallback never passes for the real data.
    ``seed`` is the job's training seed (default ``run.seed``, the first of ``run.seeds``); the
    key of seed 0 is the key checkpoints had before ``run.seeds`` existed.
    """
    run = identity(config.run)  # the seed heads the hash, as it did before the rules were on the fields
    relevant: dict[str, Any] = {"seed": run.pop("seed") if seed is None else seed, "agent": identity(agent)}
    run.pop("seed", None)
    for name, values in (("run", run), *((s, identity(getattr(config, s))) for s in ("data", "train", "evaluate"))):
        if values:  # a section with nothing in the hash is left out, so older keys stay valid
            relevant[name] = values
    if served is not None:
        data = relevant["data"]
        data["source"], data["options"] = served["source"], served["options"]
        data.pop("fallback"), data.pop("fallback_options")
    blob = json.dumps(relevant, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def config_to_dict(config: Config) -> dict:
    """The resolved config as plain data (what ``config.yaml`` in a run folder holds)."""
    out = dataclasses.asdict(config)
    for key in _NOT_KEYS:
        out.pop(key)
    out["agents"] = [dataclasses.asdict(a) for a in config.agents]
    return out
