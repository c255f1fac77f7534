"""The plugin contracts as types: what a plugin's factory must build, written once.

Each hook in :mod:`nrstream.plugin.hookspecs` receives a ``register(name, factory)`` callable; the
protocols here say what ``factory`` returns, so a type checker (and a reader) sees the
contract that :mod:`nrstream.testing` checks at run time. They are structural
(``typing.Protocol``): a plugin never imports or subclasses them.

This module is torch-free at run time (``import nrstream`` imports it through the
hookspecs and must stay cheap); tensor types are annotations only.

=============  =========================================  ==============================
kind           factory                                    builds
=============  =========================================  ==============================
architecture   ``(*, input_size, num_classes, **options)``  :class:`Architecture`
loss           ``(**options)``                              :class:`Loss`
metric         ``(**options)``                              :class:`Metric`
data source    ``(**options)``                              :class:`nrstream.stream.bank.Dataset`
=============  =========================================  ==============================

A data source may declare more than loading: it registers a :class:`DataSource` (``load``, and
optionally ``download`` and ``split_audio``) instead of a bare factory. Core code asks the
declaration (``nrstream data download``, ``nrstream data make-recording``) and never knows a
source's folder layout; ``nrstream.testing.check_data_source`` checks what it declares.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, TypedDict, runtime_checkable

if TYPE_CHECKING:
    import torch

    from nrstream.stream.bank import Dataset
    from nrstream.stream.stream import Chunk

__all__ = [
    "State",
    "Architecture",
    "ArchitectureFactory",
    "Loss",
    "LossFactory",
    "Metric",
    "MetricFactory",
    "MetricKind",
    "Curve",
    "METRIC_KINDS",
    "CURVE_KEYS",
    "DataSourceFactory",
    "DataSource",
    "SplitAudio",
    "ArchitectureRegister",
    "LossRegister",
    "MetricRegister",
    "DataSourceRegister",
]

#: A recurrent state: a tensor or a (nested) tuple of tensors, the batch on dimension 0.
State: TypeAlias = "torch.Tensor | tuple[State, ...]"


@runtime_checkable
class Architecture(Protocol):
    """A recurrent classifier (an ``nn.Module``) that reads a stream chunk by chunk.

    ``forward(x [B, T, F], state, reset=None, aux=None) -> (logits [B, T, C], state)``:

    - ``reset [B, T]`` bool clears a lane's state just before that frame, so a lane reset
      at frame ``t`` continues exactly as a fresh start on ``x[:, t:]``; other lanes are
      untouched.
    - Chunked and frame-by-frame calls give the same logits and state (the stream may be
      cut anywhere).
    - When ``aux`` is a dict, the module stores ``aux["hidden"]`` (``[B, T, H]``, the top
      layer's state per frame) in it, for losses and metrics with ``needs_hidden``.
    """

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """The state before any frame, on ``device``, batch first."""
        ...

    def forward(
        self,
        x: torch.Tensor,
        state: State,
        reset: torch.Tensor | None = None,
        aux: dict[str, Any] | None = None,
    ) -> tuple[torch.Tensor, State]: ...

    def __call__(
        self,
        x: torch.Tensor,
        state: State,
        reset: torch.Tensor | None = None,
        aux: dict[str, Any] | None = None,
    ) -> tuple[torch.Tensor, State]: ...


class ArchitectureFactory(Protocol):
    """``factory(*, input_size: int, num_classes: int, **options) -> Architecture`` (usually the class)."""

    def __call__(self, *, input_size: int, num_classes: int, **options: Any) -> Architecture: ...


@runtime_checkable
class Loss(Protocol):
    """A training loss.

    ``protocol`` names the training protocol the loss needs (a key of the protocol table,
    see :mod:`nrstream.plugin.protocols`). ``__call__(logits [B, T, C], chunk, aux)``
    returns a scalar tensor; frames labelled ``-1`` (noise) never enter a cross-entropy.
    A loss that reads ``aux["hidden"]`` sets ``needs_hidden = True``.
    """

    protocol: str

    def __call__(self, logits: torch.Tensor, chunk: Chunk, aux: dict[str, Any] | None = None) -> torch.Tensor: ...


class LossFactory(Protocol):
    def __call__(self, **options: Any) -> Loss: ...


#: What a metric produces under one key of ``compute()``.
MetricKind = Literal["scalar", "curve"]
METRIC_KINDS: tuple[str, ...] = ("scalar", "curve")
#: The keys of a curve, exactly.
CURVE_KEYS: frozenset[str] = frozenset({"x", "y", "x_label", "y_label"})


class Curve(TypedDict):
    """A ``"curve"`` value: ``x`` and ``y`` of equal length, and their axis labels."""

    x: list[float]
    y: list[float]
    x_label: str
    y_label: str


@runtime_checkable
class Metric(Protocol):
    """A streaming metric, river style.

    ``update(chunk, logits [B, T, C], aux=None)`` folds in one chunk of every lane;
    ``compute()`` reports the value so far; ``reset()`` forgets everything.

    **The metric output contract** (what the report renders, with no knowledge of the
    metric): ``produces`` maps every key of ``compute()`` to ``"scalar"`` or ``"curve"``
    (the keys of ``compute()`` are exactly those of ``produces``). A scalar is a float or
    ``None`` (nothing to report yet); a curve is a :class:`Curve`,
    ``{"x": [...], "y": [...], "x_label": str, "y_label": str}``. Everything
    ``compute()`` returns is JSON-serialisable. A metric that reads ``aux["hidden"]`` sets
    ``needs_hidden = True``.
    """

    produces: dict[str, str]

    def update(self, chunk: Chunk, logits: torch.Tensor, aux: dict[str, Any] | None = None) -> None: ...

    def compute(self) -> dict[str, float | None | Curve]: ...

    def reset(self) -> None: ...


class MetricFactory(Protocol):
    def __call__(self, **options: Any) -> Metric: ...


class DataSourceFactory(Protocol):
    """``factory(**options) -> nrstream.stream.bank.Dataset``: the three splits' banks, on the CPU."""

    def __call__(self, **options: Any) -> Dataset: ...


@dataclass
class SplitAudio:
    """The audio files behind one split of a data source: what ``make-recording`` mixes.

    Attributes:
        split: ``train``, ``validation`` or ``test``.
        sample_rate: of the clips and the noise recordings (Hz).
        clips: ``(class name, file)`` per sample of the split, WAV files.
        noise: background recordings (WAV); the split uses the part ``noise_share`` of each.
        noise_share: ``[low, high)`` fraction of each noise recording that belongs to this split
            (disjoint across splits, as the source's own noise banks cut them).
        frontend: the source's feature front end parameters (``Dataset.info["frontend"]``).
        clip_seconds: every clip is zero-padded or cut to this length, as the loader does.
        root: where the files live (for the truth CSV's relative clip paths).
    """

    split: str
    sample_rate: int
    clips: list[tuple[str, Path]]
    noise: list[Path]
    noise_share: tuple[float, float]
    frontend: dict = field(default_factory=dict)
    clip_seconds: float = 1.0
    root: Path | None = None


@dataclass(frozen=True)
class DataSource:
    """What a data source can do, declared (register it in place of a bare factory).

    Attributes:
        load: ``load(**options) -> Dataset`` (required): the three splits' banks, on the CPU.
        download: ``download(dest=None, **options) -> Path`` (optional): fetch and verify the
            data set into ``dest`` (default: the data folder), return where it is.
        split_audio: ``split_audio(dataset, split) -> SplitAudio`` (optional): the audio files
            of a split of a loaded ``dataset`` and its noise recordings (audio sources only).

    Calling a ``DataSource`` loads: ``source(**options)`` is ``source.load(**options)``.
    """

    load: Callable[..., Dataset]
    download: Callable[..., Path] | None = None
    split_audio: Callable[[Dataset, str], SplitAudio] | None = None

    def __call__(self, **options: Any) -> Dataset:
        return self.load(**options)

    @classmethod
    def of(cls, factory: DataSource | Callable[..., Dataset]) -> DataSource:
        """The declaration of a registered data source (a bare factory declares only ``load``)."""
        if isinstance(factory, DataSource):
            return factory
        # a ``download`` function attribute on the factory: how sources declared it before DataSource existed
        return cls(load=factory, download=getattr(factory, "download", None))

    @property
    def can(self) -> list[str]:
        """What it declares, e.g. ``["load", "download", "split_audio"]``."""
        return ["load"] + [name for name in ("download", "split_audio") if getattr(self, name) is not None]


# The ``register`` callables each hook receives (tox style: ``register: ArchitectureRegister``).
ArchitectureRegister: TypeAlias = Callable[[str, ArchitectureFactory], None]
LossRegister: TypeAlias = Callable[[str, LossFactory], None]
MetricRegister: TypeAlias = Callable[[str, MetricFactory], None]
DataSourceRegister: TypeAlias = Callable[[str, "DataSource | DataSourceFactory"], None]
