"""Experiment configs: YAML files validated into dataclasses whose fields describe the keys.

A config names what to train and how to score it. Every problem is one line (a
:class:`~nrstream.errors.ConfigError`) naming the file, the key path and, for a typo, the
closest valid names::

    configs/x.yaml: train.epocs: unknown key; did you mean 'epochs'?
    configs/x.yaml: train.epochs: expected an integer, got 'three' (str)
    configs/x.yaml: agents[0].arch: unknown architecture 'gur'; did you mean 'gru'? (registered: gru, lstm, ...)
    configs/x.yaml: --set train.lr: must be > 0, got 0.0

Loading has two phases. :func:`parse_config` with ``check_plugins=False`` checks the
structure, types and ranges of every key; it imports neither torch nor any plugin.
:func:`resolve_plugins` then resolves the plugin names against the registry (which loads
the plugins) and checks every plugin option early, before anything trains: unknown
options and options of the wrong annotated type (the registry's signature check), losses
and metrics built once with their options, and architectures built on torch's ``meta``
device (no memory; placeholder ``input_size=1``, ``num_classes=2``) so that a bad or
absurd size (``hidden_size: 1000000``) is an error naming its key, not an allocator crash.
:func:`load_config` does both, and applies ``--set KEY=VALUE`` overrides in between.

The package: :mod:`~nrstream.lab.config.schema` (the sections; each key is one field with its
type, default, range, documentation and checkpoint-identity rule; cross-field rules as the
sections' ``check`` methods), :mod:`~nrstream.lab.config.read` (file and ``--set`` text with
limits), :mod:`~nrstream.lab.config.validate` (generic checks driven by the fields),
:mod:`~nrstream.lab.config.plugins` (plugin resolution), :mod:`~nrstream.lab.config.load`
(file, overrides, validation), :mod:`~nrstream.lab.config.identity` (checkpoint keys) and
:mod:`~nrstream.lab.config.reference` (the table below).

Limits that keep a hostile or mistyped file from hurting: a config file is at most
1 MiB, UTF-8, with at most 100 000 YAML nodes after alias expansion (no "billion
laughs"); every number is finite and every integer at most 2**53 in magnitude; sizes
have upper bounds (below); error messages quote at most 80 characters of a value.

Reference (every key, generated from the fields of :mod:`nrstream.lab.config.schema`; a test
fails when a key is missing here):

{reference}

``agents`` is either a list of ``{arch, arch_options, loss, loss_options}`` or the product
``{archs: [...], losses: [...]}`` whose entries are a name or ``{name: ..., options: {...}}``.
``train.reset_state_every`` bounds the training streams of protocols that carry the state
(``nrstream.plugin.protocols``): with
``k > 0`` every lane restarts from the initial state every ``k`` steps (``k x chunk_length``
frames), so the network never trains on longer histories; ``0`` (default) lets the state
run on forever.
``train.patience = p > 0`` stops training early once ``p`` epochs in a row have not raised the
best validation accuracy by more than ``train.min_delta`` (it needs ``train.validate``);
``train.epochs`` is then the most it may run, and the learning-rate schedule still spans
``train.epochs``. ``train.min_epochs = m`` lets it stop at epoch ``m`` at the earliest (as
Lightning's ``min_epochs``): under a cosine schedule the learning rate of the first epochs
is still high, and a plateau of the noisy validation accuracy there is not the end. The
best-validation weights are in ``best.pt`` either way, and each agent's history in
``results.json`` records where it stopped (``stopped_early``).
``evaluate.stream`` changes the test streams only (a distribution shift between training
and test): its keys are those of ``data.stream`` and replace them for every test stream
(by length and endless), e.g. ``{gap_min: 0, gap_max: 0}`` puts samples back to back and
``{noise_scale: 3.0}`` makes the noise 3x louder. Training and validation keep
``data.stream``; the settings the test streams used are recorded in ``results.json``
(``data.test_stream``). Being part of ``evaluate``, it reuses trained checkpoints.
``data.stream.schedule`` makes the stream non-stationary (:mod:`nrstream.stream.schedule`): a list of
phases ``{frames, classes, blend, stream, name}``, each drawing only its ``classes`` (names or indices)
with its ``stream`` changes (``gap_min``, ``gap_max``, ``noise_scale``) for ``frames`` frames per lane,
switching abruptly or over ``blend`` frames; a bad phase is one line naming
``data.stream.schedule[i].KEY``. The ``continual`` section configures ``nrstream prequential``
(:mod:`nrstream.lab.prequential`): each chunk of the (scheduled) training stream is predicted and
scored, then learnt from, with ``continual.optimizer`` and ``continual.lr``, the state never reset.
``evaluate.metrics`` entries are a name or ``{name: ..., options: {...}}``; the default is
``accuracy, accuracy_by_position, rolling_accuracy, noise_entropy, state_norm``.

Seeds: ``run.seeds`` lists the seeds to train each agent with (one job per agent and
seed); ``run.seed`` is the single-seed spelling of ``run.seeds: [seed]``. After loading,
``run.seeds`` is always a non-empty list of distinct seeds and ``run.seed == run.seeds[0]``
(the first seed, for what needs one). Giving both is allowed only when they agree
(``run.seed`` equals ``run.seeds[0]``); anything else is an error. On the command line
the last spelling wins: ``--set run.seeds=[1,2]`` replaces the file's ``run.seed``, and
``--set run.seed=4`` its ``run.seeds``.
``run.name`` is a plain folder name: no ``/`` or ``\\``, not ``.``/``..``, no leading ``.``,
no control characters, at most 100 characters.

Command-line overrides (``--set KEY=VALUE``, :func:`apply_overrides`) replace one key
each; ``VALUE`` is YAML (``1``, ``[ce, ce_kl]``, ``{hidden_size: 8}``, ``null``); list items
are addressed as ``agents[0].arch``. They are validated exactly like the file, and errors
name them (``configs/x.yaml: --set train.epochs: ...``).
"""

from __future__ import annotations

from nrstream.lab.config.identity import agent_key, config_to_dict, identity
from nrstream.lab.config.load import apply_overrides, load_config
from nrstream.lab.config.plugins import ARCH_FILLED, MAX_PARAMETERS, resolve_plugins
from nrstream.lab.config.read import MAX_CONFIG_BYTES, MAX_YAML_NODES, parse_override, read_config_file
from nrstream.lab.config.reference import reference_rows, reference_table
from nrstream.lab.config.schema import (
    _NOT_KEYS,
    DEFAULT_LENGTHS,
    DEFAULT_METRICS,
    MAX_NAME,
    AgentConfig,
    Config,
    ContinualConfig,
    DataConfig,
    EvaluateConfig,
    Invalid,
    MetricConfig,
    ResourcesConfig,
    RunConfig,
    StreamConfig,
    TrainConfig,
    key,
)
from nrstream.lab.config.validate import MAX_INT, MAX_PATH, parse_config
from nrstream.stream.settings import StreamSettings

__all__ = [
    "Config",
    "RunConfig",
    "ResourcesConfig",
    "DataConfig",
    "StreamConfig",
    "StreamSettings",
    "AgentConfig",
    "TrainConfig",
    "ContinualConfig",
    "EvaluateConfig",
    "MetricConfig",
    "load_config",
    "parse_config",
    "resolve_plugins",
    "apply_overrides",
    "parse_override",
    "read_config_file",
    "config_to_dict",
    "agent_key",
    "identity",
    "key",
    "Invalid",
    "reference_rows",
    "reference_table",
    "DEFAULT_LENGTHS",
    "DEFAULT_METRICS",
    "MAX_CONFIG_BYTES",
    "MAX_YAML_NODES",
    "MAX_INT",
    "MAX_NAME",
    "MAX_PATH",
    "MAX_PARAMETERS",
    "ARCH_FILLED",
    "_NOT_KEYS",
]

if __doc__ is not None:  # (python -OO drops docstrings)
    __doc__ = __doc__.replace("{reference}", reference_table())
