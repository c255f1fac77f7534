"""Hook specifications: the documentation of every nrstream plugin hook.

A plugin is a module with functions decorated by ``@nrstream.hookimpl`` whose names
match a hook below, announced through the ``nrstream`` entry-point group::

    [project.entry-points.nrstream]
    my_plugin = "my_package.my_module"

Each hook runs once, the first time nrstream needs that kind of component (building
the registry), and receives ``register(name, factory)``. Call it once per component.
A name registered twice, by any two plugins, is an error that names both.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("nrstream")
hookimpl = pluggy.HookimplMarker("nrstream")


@hookspec
def nrstream_register_architectures(register):
    """Register recurrent architectures.

    ``factory(*, input_size: int, num_classes: int, **config) -> torch.nn.Module``.
    The module provides ``initial_state(batch_size, device)`` and
    ``forward(x [B, T, F], state, reset=None, aux=None) -> (logits [B, T, C], state)``:
    ``reset [B, T]`` bool clears a lane's state just before that frame; when ``aux`` is a
    dict the module stores ``aux["hidden"]`` (``[B, T, H]``, the top layer's state per
    frame) in it. Chunked and frame-by-frame calls must give the same outputs. A state is
    a tensor or a (nested) tuple of tensors with the batch on dimension 0.
    """


@hookspec
def nrstream_register_losses(register):
    """Register training losses.

    ``factory(**config)`` returns an object with ``protocol`` (``"segmented"``: one
    sample at a time, state reset at every sample start, no noise; or ``"continual"``:
    endless streams, state carried across samples and noise) and
    ``__call__(logits [B, T, C], chunk, aux: dict) -> scalar tensor``. A loss that needs
    the hidden states sets ``needs_hidden = True`` and reads ``aux["hidden"]``.
    """


@hookspec
def nrstream_register_metrics(register):
    """Register streaming metrics.

    ``factory(**config)`` returns an object with ``update(chunk, logits, aux)``,
    ``compute() -> dict`` and ``reset()``, river style: ``update`` folds in one chunk of
    every lane, ``compute`` reports the value so far (JSON-serialisable). A metric that
    needs hidden states sets ``needs_hidden = True`` and reads ``aux["hidden"]``.
    """


@hookspec
def nrstream_register_data_sources(register):
    """Register data sources.

    ``factory(**config) -> nrstream.Dataset`` builds the train / validation / test sample
    banks (on the CPU; the caller moves them). A source whose data is missing raises
    ``nrstream.DataNotFoundError`` with every place it looked and how to get the data.
    """
