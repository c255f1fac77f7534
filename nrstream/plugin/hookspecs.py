"""Hook specifications: the documentation of every nrstream plugin hook.

A plugin is a module with functions decorated by ``@nrstream.hookimpl`` whose names
match a hook below, announced through the ``nrstream`` entry-point group::

    [project.entry-points.nrstream]
    my_plugin = "my_package.my_module"

Each hook runs once, the first time nrstream needs that kind of component (building
the registry), and receives ``register(name, factory)``. Call it once per component.
A name registered twice, by any two plugins, is an error that names both.

The annotations name the contracts in :mod:`nrstream.plugin.contracts` (``typing.Protocol``s),
and :mod:`nrstream.testing` checks a component against them (``check_architecture``,
``check_loss``, ``check_metric``): run it in your plugin's tests.
"""

from __future__ import annotations

import pluggy

from nrstream.plugin.contracts import ArchitectureRegister, DataSourceRegister, LossRegister, MetricRegister

hookspec = pluggy.HookspecMarker("nrstream")
hookimpl = pluggy.HookimplMarker("nrstream")


@hookspec
def nrstream_register_architectures(register: ArchitectureRegister) -> None:
    """Register recurrent architectures.

    ``factory(*, input_size: int, num_classes: int, **config) -> torch.nn.Module``
    (:class:`nrstream.plugin.contracts.Architecture`). The module provides
    ``initial_state(batch_size, device)`` and
    ``forward(x [B, T, F], state, reset=None, aux=None) -> (logits [B, T, C], state)``:
    ``reset [B, T]`` bool clears a lane's state just before that frame; when ``aux`` is a
    dict the module stores ``aux["hidden"]`` (``[B, T, H]``, the top layer's state per
    frame) in it. Chunked and frame-by-frame calls must give the same outputs. A state is
    a tensor or a (nested) tuple of tensors with the batch on dimension 0. A lane reset at
    frame ``t`` continues exactly as a fresh start on ``x[:, t:]``, other lanes untouched.
    ``nrstream.testing.check_architecture(factory)`` checks all of this.
    """


@hookspec
def nrstream_register_losses(register: LossRegister) -> None:
    """Register training losses.

    ``factory(**config)`` returns an object (:class:`nrstream.plugin.contracts.Loss`) with
    ``protocol``, the name of the training protocol it needs (a key of the protocol table
    in :mod:`nrstream.plugin.protocols`, which says how the training stream is built and when the
    state is reset), and ``__call__(logits [B, T, C], chunk, aux: dict) -> scalar tensor``.
    A loss that needs the hidden states sets ``needs_hidden = True`` and reads
    ``aux["hidden"]``. ``nrstream.testing.check_loss(loss)`` checks it.
    """


@hookspec
def nrstream_register_metrics(register: MetricRegister) -> None:
    """Register streaming metrics.

    ``factory(**config)`` returns an object (:class:`nrstream.plugin.contracts.Metric`) with
    ``update(chunk, logits, aux)``, ``compute() -> dict`` and ``reset()``, river style:
    ``update`` folds in one chunk of every lane, ``compute`` reports the value so far
    (JSON-serialisable). ``produces`` declares what ``compute()`` returns, so that reports
    render any metric without knowing it: it maps every key of ``compute()`` to
    ``"scalar"`` (a float, or ``None`` before there is anything to report) or ``"curve"``
    (``{"x": [float], "y": [float], "x_label": str, "y_label": str}``). A metric that
    needs hidden states sets ``needs_hidden = True`` and reads ``aux["hidden"]``.
    ``nrstream.testing.check_metric(factory)`` checks it.
    """


@hookspec
def nrstream_register_data_sources(register: DataSourceRegister) -> None:
    """Register data sources.

    ``factory(**config) -> nrstream.Dataset`` (:class:`nrstream.plugin.contracts.DataSourceFactory`)
    builds the train / validation / test sample banks (on the CPU; the caller moves them).
    A source whose data is missing raises ``nrstream.DataNotFoundError`` with every place
    it looked and how to get the data. A source that can do more registers a
    :class:`nrstream.plugin.contracts.DataSource` instead of the bare factory: ``load`` (the
    factory), and optionally ``download(dest=None, **options)`` (``nrstream data download``)
    and ``split_audio(dataset, split) -> SplitAudio`` (the audio files of a split and its
    noise recordings, for ``nrstream data make-recording``). ``nrstream.testing.check_data_source``
    checks what it declares.
    """
