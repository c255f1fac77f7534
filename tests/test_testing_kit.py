"""The conformance kit (``nrstream.testing``) accepts what keeps the contracts and says what breaks them."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from nrstream.plugin import contracts
from nrstream.plugin.registry import get_registry, reload_plugins
from nrstream.stream.stream import Chunk
from nrstream.testing import (
    ConformanceError,
    check_architecture,
    check_data_source,
    check_loss,
    check_metric,
    known_protocols,
    make_chunk,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def builtins(monkeypatch):
    """The built-in loss and metric plugins only."""
    monkeypatch.setenv("NRSTREAM_LOAD_PLUGINS", "losses,metrics")
    reload_plugins()
    yield get_registry()
    monkeypatch.delenv("NRSTREAM_LOAD_PLUGINS")
    reload_plugins()


# --- make_chunk ---------------------------------------------------------------------------


def test_make_chunk_is_a_consistent_stream_piece():
    chunk = make_chunk(lanes=4, frames=30, features=2, num_classes=5, seed=3)
    assert isinstance(chunk, Chunk)
    assert chunk.x.shape == (4, 30, 2) and chunk.x.dtype == torch.float32
    assert torch.equal(chunk.mask, chunk.label >= 0)
    assert (chunk.label < 5).all() and (chunk.label >= -1).all()
    assert not chunk.mask[:, 0].any(), "every lane starts with a gap"
    assert chunk.start.any() and chunk.end.any() and (~chunk.mask).any()
    # a start opens a sample after a gap or another sample; an end closes one
    previous = torch.cat([torch.zeros_like(chunk.mask[:, :1]), chunk.mask[:, :-1]], 1)
    assert not (chunk.mask & ~previous & ~chunk.start).any()
    assert not (chunk.start & ~chunk.mask).any() and not (chunk.end & ~chunk.mask).any()
    following = torch.cat([chunk.mask[:, 1:], torch.zeros_like(chunk.mask[:, :1])], 1)
    assert not (chunk.end & following & ~torch.roll(chunk.start, -1, 1)).any()
    assert torch.equal(chunk.sample_index, torch.cumsum(chunk.start.long(), 1))
    assert torch.equal(chunk.sample_id < 0, ~chunk.mask)
    # deterministic per seed, different across seeds
    again = make_chunk(lanes=4, frames=30, features=2, num_classes=5, seed=3)
    assert torch.equal(again.x, chunk.x) and torch.equal(again.label, chunk.label)
    assert not torch.equal(make_chunk(lanes=4, frames=30, features=2, num_classes=5, seed=4).label, chunk.label)


def test_make_chunk_cut_off_sample_has_no_decision_frame():
    chunk = make_chunk(lanes=1, frames=5, gap=(1, 1), sample_length=(6, 6))
    assert chunk.label.tolist()[0][0] == -1 and chunk.start[0, 1]
    assert not chunk.end.any(), "a sample longer than the chunk is not decided in it"


def test_make_chunk_from_labels():
    label = torch.tensor([[-1, 2, 2, 0, -1, 1]])
    chunk = make_chunk(label=label, features=3, dtype=torch.float64)
    assert chunk.x.shape == (1, 6, 3) and chunk.x.dtype == torch.float64
    assert chunk.start.tolist() == [[False, True, False, True, False, True]]
    assert chunk.end.tolist() == [[False, False, True, True, False, True]]
    assert chunk.sample_index.tolist() == [[0, 1, 1, 2, 2, 3]]
    end = torch.zeros(1, 6, dtype=torch.bool)
    assert not make_chunk(label=label, end=end).end.any()


def test_does_not_touch_the_global_generator():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    make_chunk()
    check_architecture(TinyRNN, options={"hidden_size": 3})
    assert torch.equal(torch.rand(3), expected)


# --- architectures ------------------------------------------------------------------------


class TinyRNN(nn.Module):
    """A correct minimal architecture: ``h_t = tanh(W x_t + U h_{t-1})``; flags break it on purpose."""

    def __init__(self, *, input_size: int, num_classes: int, hidden_size: int = 4, broken: str = "") -> None:
        super().__init__()
        self.broken = broken
        self.hidden_size = hidden_size
        self.w = nn.Linear(input_size, hidden_size)
        self.u = nn.Linear(hidden_size, hidden_size, bias=False)
        self.readout = nn.Linear(hidden_size, num_classes)
        if broken == "unused_parameter":
            self.unused = nn.Parameter(torch.zeros(2))

    def initial_state(self, batch_size, device=None):
        dtype = torch.float32 if self.broken == "state_dtype" else self.readout.weight.dtype
        if self.broken == "state_device":
            device = "cpu"
        if self.broken == "state_layout":
            return torch.zeros(self.hidden_size, batch_size, device=device, dtype=dtype)
        return torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)

    def forward(self, x, state, reset=None, aux=None):
        if self.broken == "chunk_norm":  # depends on the chunk's frames: chunking changes it
            x = x - x.mean(1, keepdim=True)
        inputs, h, hidden = self.w(x), state, []
        for t, frame in enumerate(inputs.unbind(1)):
            if reset is not None and self.broken != "ignores_reset":
                lanes = reset[:, t].any().expand(reset.shape[0]) if self.broken == "resets_all_lanes" else reset[:, t]
                if self.broken == "inplace_reset" and lanes.any():
                    h = h.mul_(~lanes[:, None])
                else:
                    h = h * ~lanes[:, None]
            h = torch.tanh(frame + self.u(h))
            hidden.append(h)
        hidden = torch.stack(hidden, 1)
        if aux is not None and self.broken != "no_hidden":
            aux["hidden"] = hidden
        logits = self.readout(hidden)
        if self.broken == "last_frame_only":
            logits = logits[:, -1]
        return logits, h


def test_a_correct_architecture_passes():
    check_architecture(TinyRNN, options={"hidden_size": 3})
    check_architecture(TinyRNN, dtype=torch.float32, lanes=3, frames=7, chunk_sizes=(1, 2, 3))
    assert isinstance(TinyRNN(input_size=2, num_classes=2), contracts.Architecture)


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (
            "ignores_reset",
            r"TinyRNN: state not reset on reset=True in lane 1 \(frame 4\): its logits from there differ from a "
            r"fresh start by max \|diff\| = \d",
        ),
        ("resets_all_lanes", r"reset=True in lane 1 \(frame 4\) changed the other lanes' logits: max \|diff\| = "),
        ("chunk_norm", r"chunked != stepwise: logits frame by frame differ from one chunk of 12 frames \(without"),
        ("unused_parameter", r"no gradient reaches the parameters \['unused'\]"),
        ("last_frame_only", r"logits must be \[B, T, C\] = \(4, 12, 3\), got \(4, 3\)"),
        ("state_layout", r"initial_state\(1, cpu\): state has shape \(4, 1\), batch not first"),
        ("state_dtype", r"initial_state: state is torch.float32 in a model cast to torch.float64"),
        ("no_hidden", r"must store aux\['hidden'\] \[B, T, H\]"),
        ("inplace_reset", r"forward changed the state passed to it in place"),
    ],
)
def test_a_broken_architecture_fails_saying_what_broke(broken, message):
    with pytest.raises(ConformanceError, match=message) as info:
        check_architecture(TinyRNN, options={"broken": broken})
    assert isinstance(info.value, AssertionError)
    assert "\n" not in str(info.value)


def test_state_on_the_wrong_device_is_caught():
    # "meta" stands in for an accelerator: the check runs before any arithmetic
    with pytest.raises(ConformanceError, match=r"initial_state\(1, meta\): state is on cpu, not on meta"):
        check_architecture(TinyRNN, options={"broken": "state_device"}, device="meta")


def test_a_module_without_initial_state_is_named():
    def factory(*, input_size, num_classes):
        return nn.Linear(input_size, num_classes)

    with pytest.raises(ConformanceError, match="factory: the module lacks initial_state"):
        check_architecture(factory)


# --- losses -------------------------------------------------------------------------------


BUILTIN_LOSSES = ["reset", "ce", "ce_kl", "ce_kl_state"]


@pytest.mark.parametrize("name", BUILTIN_LOSSES)
@pytest.mark.parametrize("options", [{}, {"target": "decision"}], ids=["frames", "decision"])
def test_builtin_losses_pass(builtins, name, options):
    check_loss(builtins.get("loss", name).factory, options=options, name=name)


def test_builtin_loss_options_and_instances_pass(builtins):
    check_loss(builtins.create("loss", "ce_kl", normalise="joint", kl_weight=0.5))
    check_loss(builtins.get("loss", "ce_kl").factory(), dtype=torch.float32)


class TinyLoss:
    """Cross-entropy on sample frames; flags break it on purpose."""

    protocol = known_protocols()[0]

    def __init__(self, broken: str = "") -> None:
        self.broken = broken
        if broken == "protocol":
            self.protocol = "streaming"

    def __call__(self, logits, chunk, aux=None):
        logp = torch.log_softmax(logits, -1)
        if self.broken == "label_as_class":  # -1 wraps round to the last class
            return -logp.gather(-1, (chunk.label % logits.shape[-1])[..., None]).mean()
        if self.broken == "crashes_on_noise":
            return nn.functional.cross_entropy(logits.flatten(0, 1), chunk.label.flatten())
        nll = -logp.gather(-1, chunk.label.clamp_min(0)[..., None]).squeeze(-1) * chunk.mask
        if self.broken == "per_frame":
            return nll
        if self.broken == "unguarded_mean":  # 0 / 0 on a chunk without samples
            return nll.sum() / chunk.mask.sum()
        if self.broken == "detached":
            return (nll.sum() / chunk.mask.sum().clamp_min(1)).detach()
        return nll.sum() / chunk.mask.sum().clamp_min(1)


def test_a_correct_loss_passes():
    check_loss(TinyLoss)
    assert isinstance(TinyLoss(), contracts.Loss)


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ("protocol", r"TinyLoss: protocol 'streaming' is not a training protocol; the protocol table has "),
        ("label_as_class", r"the -1 label of noise frames is read as a class: reversing .* changes the loss from"),
        ("crashes_on_noise", r"raised IndexError on a chunk of noise and samples: Target -1 is out of bounds"),
        ("per_frame", r"must return a scalar tensor, got \(3, 12\) on a chunk of noise and samples"),
        ("unguarded_mean", r"returned nan \(torch.float64\) on a chunk of noise only; expected a finite float"),
        ("detached", r"does not depend on the logits"),
    ],
)
def test_a_broken_loss_fails_saying_what_broke(broken, message):
    with pytest.raises(ConformanceError, match=message):
        check_loss(TinyLoss, options={"broken": broken})


def test_known_protocols_include_the_builtin_losses(builtins):
    protocols = {builtins.get("loss", n).factory.protocol for n in builtins.names("loss")}
    assert protocols <= set(known_protocols())
    assert len(protocols) == 2


# --- metrics ------------------------------------------------------------------------------


class TinyMetric:
    """Decision accuracy (a scalar) and its running value (a curve); flags break it on purpose."""

    produces = {"accuracy": "scalar", "running": "curve"}

    def __init__(self, broken: str = "") -> None:
        self.broken = broken
        if broken == "bad_kind":
            self.produces = {"accuracy": "number", "running": "curve"}
        self.reset()

    def reset(self) -> None:
        self.correct = self.total = 0
        self.curve: list[float] = [] if self.broken != "keeps_curve" else getattr(self, "curve", [])

    def update(self, chunk, logits, aux=None) -> None:
        hits = (logits.argmax(-1) == chunk.label) & chunk.end
        self.correct += int(hits.sum())
        self.total += int(chunk.end.sum())
        self.curve.append(self.correct / max(self.total, 1))

    def compute(self) -> dict:
        accuracy = self.correct / self.total if self.total else None
        if self.broken == "tensor_value":
            accuracy = torch.tensor(accuracy or 0.0)
        if self.broken == "mutating_compute":
            self.total += 1
        running = {
            "x": list(range(1, len(self.curve) + 1)),
            "y": list(self.curve),
            "x_label": "chunks",
            "y_label": "accuracy",
        }
        if self.broken == "curve_missing_label":
            del running["y_label"]
        result = {"accuracy": accuracy, "running": running}
        if self.broken == "extra_key":
            result["total"] = self.total
        return result


def test_a_correct_metric_passes():
    check_metric(TinyMetric)
    check_metric(TinyMetric())
    assert isinstance(TinyMetric(), contracts.Metric)


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ("bad_kind", r"TinyMetric: produces\['accuracy'\] = 'number'; kinds are scalar, curve"),
        (
            "extra_key",
            r"compute\(\) before any update keys differ from produces: not declared \['total'\], missing \[\]",
        ),
        ("tensor_value", r"compute\(\)\['accuracy'\] before any update is not a scalar: tensor\(0\.\) \(Tensor\)"),
        ("curve_missing_label", r"compute\(\)\['running'\] before any update is not a curve: a curve is a dict"),
        ("mutating_compute", r"calling compute\(\) twice after update 1 gave two results"),
        ("keeps_curve", r"reset\(\) does not restore the initial compute\(\): 'running'"),
    ],
)
def test_a_broken_metric_fails_saying_what_broke(broken, message):
    with pytest.raises(ConformanceError, match=message):
        check_metric(TinyMetric, options={"broken": broken})


def test_metric_checked_on_given_chunks():
    chunks = [make_chunk(label=torch.tensor([[-1, 0, 0, -1, 1]]))]
    check_metric(TinyMetric, chunks=chunks, num_classes=2)


BUILTIN_METRICS = [
    "accuracy",
    "accuracy_by_position",
    "rolling_accuracy",
    "noise_entropy",
    "state_norm",
    "prequential_accuracy",
    "accuracy_matrix",
]


@pytest.mark.parametrize("name", BUILTIN_METRICS)
def test_builtin_metrics_pass(builtins, name):
    factory = builtins.get("metric", name).factory
    check_metric(factory, name=name)
    json.dumps(factory().compute())


def test_every_builtin_loss_and_metric_is_checked(builtins):
    assert builtins.names("metric") == sorted(BUILTIN_METRICS)
    assert builtins.names("loss") == sorted(BUILTIN_LOSSES)


# --- data sources (issue 23: declared capabilities) ----------------------------------------


def _source_options(name: str, request) -> dict:
    if name == "fashion_mnist":
        import os

        if not os.path.isdir("/usr/share/datasets/fashion-mnist"):
            pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
        return {}
    if name == "speech_commands":
        return {"root": str(request.getfixturevalue("speech_sample"))}
    if name == "fsdd":
        request.getfixturevalue("tmp_cache")
        return {"root": str(request.getfixturevalue("fsdd_sample"))}
    if name == "synth_speech":
        import shutil

        if shutil.which("espeak-ng") is None:
            pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
        request.getfixturevalue("tmp_cache")
        return {"words": ["yes", "no"], "renderings_per_word": 3, "progress": False}
    return {}


@pytest.mark.parametrize("name", ["toy", "fashion_mnist", "speech_commands", "synth_speech", "fsdd"])
def test_every_builtin_data_source_passes(name, request):
    registry = get_registry()
    if name not in registry.names("data_source"):
        pytest.skip(f"data source {name!r} is not registered")
    check_data_source(registry.data_source(name), options=_source_options(name, request), name=name)


def test_builtin_data_sources_declare_what_they_can_do():
    registry = get_registry()
    assert registry.data_source("toy").can == ["load"]
    assert registry.data_source("fashion_mnist").can == ["load", "download"]
    assert registry.data_source("speech_commands").can == ["load", "download", "split_audio"]
    assert registry.data_source("synth_speech").can == ["load", "split_audio"]
    assert registry.data_source("fsdd").can == ["load", "download", "split_audio"]


def _toy():
    from nrstream.data.datasets import load_dataset

    return load_dataset("toy")


def test_a_source_with_labels_out_of_range_is_rejected_in_one_line():
    import dataclasses

    from nrstream.stream.bank import Dataset

    def load_broken(**options):
        good = _toy()
        test = good.splits["test"]
        bad = dataclasses.replace(test, labels=test.labels.clone().fill_(good.num_classes))
        return Dataset(splits={**good.splits, "test": bad}, noise=good.noise, info={"source": "broken"})

    with pytest.raises(ConformanceError, match=r"^load_broken: test labels must be int64 in \[0, \d+\)") as info:
        check_data_source(load_broken)
    assert "\n" not in str(info.value)


def test_a_source_whose_splits_share_a_clip_is_rejected_in_one_line(tmp_path):
    clip = tmp_path / "yes.wav"
    clip.write_bytes(b"RIFF")

    def split_audio(dataset, split):
        return contracts.SplitAudio(split, 16000, [("yes", clip)], [], (0.0, 0.1))

    source = contracts.DataSource(load=lambda **options: _toy(), split_audio=split_audio)
    with pytest.raises(ConformanceError, match=f"^leaky: clip {clip} is in both the train and the validation split"):
        check_data_source(source, name="leaky")


def test_a_download_without_dest_is_rejected():
    source = contracts.DataSource(load=lambda **options: _toy(), download=lambda version="1": None)
    with pytest.raises(ConformanceError, match="^nodest: download must take dest"):
        check_data_source(source, name="nodest")


def test_a_bare_factory_with_a_download_attribute_still_declares_download():
    def load(**options):
        return _toy()

    load.download = lambda dest=None: dest
    assert contracts.DataSource.of(load).can == ["load", "download"]
