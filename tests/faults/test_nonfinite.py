"""Non-finite values from any source (issue 29): a third-party data plugin and architecture, installed
through a real entry point, put NaN or infinities into the banks, the logits or the loss.

The promise: the core checks every bank when it is built (one line naming the source, split and
sample index, or ``on_error: skip`` leaves the samples out and counts them), and the training and
evaluation loops stop with one line naming the agent, the step and a likely cause. Never a number
computed from a NaN.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from conftest import pip_install_into, write_plugin_distribution

from faults.conftest import assert_nothing_lost, assert_one_line_error, snapshot, toy_config_dict

#: a third-party distribution: a data source that poisons samples, an architecture that can blow up
BAD_PLUGIN = '''
import math

import torch
from torch import nn

from nrstream import Dataset, SampleBank, hookimpl

VALUES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _bank(n, classes, generator, length=(6, 10), features=4):
    labels = torch.arange(n) % classes
    lengths = torch.randint(length[0], length[1] + 1, (n,), generator=generator)
    x = torch.zeros(n, length[1], features)
    for i in range(n):
        x[i, : lengths[i]] = labels[i].float() + 0.3 * torch.randn(int(lengths[i]), features, generator=generator)
    return SampleBank(x, lengths, labels, [f"c{k}" for k in range(classes)])


def load_bad(*, poison="none", split="test", value="nan", fraction=0.05, everything=False, seed=0):
    """Three classes; ``fraction`` of ``split``'s samples (or of its noise recordings) get one ``value``."""
    g = torch.Generator().manual_seed(seed)
    splits = {"train": _bank(48, 3, g), "validation": _bank(16, 3, g), "test": _bank(40, 3, g)}
    noise = {s: _bank(4, 3, g, length=(40, 40)) for s in ("train", "validation", "test")}
    if poison != "none":
        bank = noise[split] if poison == "noise" else splits[split]
        count = len(bank) if everything else max(1, round(fraction * len(bank)))
        for i in range(count):
            index = (3 + 7 * i) % len(bank)
            bank.features[index, 1, 2] = VALUES[value]
    return Dataset(splits, noise, {"source": "bad"})


class BlowUp(nn.Module):
    """A tanh RNN whose logits turn NaN: in evaluation (``mode: eval``) or always (``mode: train``)."""

    def __init__(self, input_size, num_classes, hidden_size=8, mode="eval"):
        super().__init__()
        self.cell = nn.RNNCell(input_size, hidden_size)
        self.readout = nn.Linear(hidden_size, num_classes)
        self.hidden_size, self.mode = hidden_size, mode

    def initial_state(self, batch_size, device=None):
        return torch.zeros(batch_size, self.hidden_size, device=device)

    def forward(self, x, state, reset=None, aux=None):
        out = []
        for t in range(x.shape[1]):
            if reset is not None:
                state = torch.where(reset[:, t, None], torch.zeros_like(state), state)
            state = self.cell(x[:, t], state)
            out.append(state)
        logits = self.readout(torch.stack(out, 1))
        if self.mode == "train" or (self.mode == "eval" and not self.training):
            logits = logits * math.nan
        return logits, state


@hookimpl
def nrstream_register_data_sources(register):
    register("bad", load_bad)


@hookimpl
def nrstream_register_architectures(register):
    register("blowup", BlowUp)
'''


@pytest.fixture(scope="module")
def bad_site(tmp_path_factory) -> Path:
    """``nrstream-test-bad`` installed with pip into its own folder (a real ``nrstream`` entry point)."""
    root = tmp_path_factory.mktemp("bad_plugin")
    folder = write_plugin_distribution(root / "src", "nrstream_test_bad", BAD_PLUGIN, dist="nrstream-test-bad")
    site = pip_install_into(root / "site", folder)
    return site


@pytest.fixture
def bad(bad_site, fault_home, monkeypatch):
    """The plugin on ``sys.path`` of this process (found through its entry point), fresh registry and data."""
    import importlib

    from nrstream.data.datasets import clear_dataset_cache
    from nrstream.plugin.registry import reload_plugins

    monkeypatch.syspath_prepend(str(bad_site))
    importlib.invalidate_caches()
    reload_plugins()
    clear_dataset_cache()
    yield bad_site
    monkeypatch.undo()
    reload_plugins()
    clear_dataset_cache()


def _config(home: Path, *, arch: str = "gru", arch_options: dict | None = None, validate: bool = True, **data) -> Path:
    raw = toy_config_dict()
    raw["data"] = {"source": "bad", "options": data, "stream": {"gap_min": 2, "gap_max": 4, "noise": "gaussian"}}
    raw["agents"]["archs"] = [{"name": arch, "options": arch_options or {"hidden_size": 8}}]
    raw["train"]["validate"] = validate
    path = home / "bad.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _evaluate(main, home: Path, config: Path, *extra: str):
    return main("evaluate", config, "--out", home / "run", "--checkpoints", home / "ck", "--no-progress", *extra)


# ---------------------------------------------------------------- banks: refused, naming source, split, index

POISONS = [
    ("test", "nan"),
    ("test", "inf"),
    ("test", "-inf"),
    ("validation", "nan"),
    ("validation", "inf"),
    ("train", "nan"),
    ("train", "-inf"),
]


@pytest.mark.parametrize(("split", "value"), POISONS)
def test_a_poisoned_split_is_refused_before_any_training(bad, main_in_process, fault_home, split, value):
    before = snapshot(fault_home)
    config = _config(fault_home, poison="split", split=split, value=value)
    result = _evaluate(main_in_process, fault_home, config)
    line = assert_one_line_error(result, "data source 'bad'", f"the {split} split", "sample 3", "on_error: skip")
    assert "NaN or infinite" in line
    assert not (fault_home / "ck").exists() and not (fault_home / "run").exists()  # no best.pt from NaN
    assert_nothing_lost(before, fault_home)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_poisoned_noise_recordings_are_refused(bad, main_in_process, fault_home, value):
    config = _config(fault_home, poison="noise", split="test", value=value)
    result = _evaluate(main_in_process, fault_home, config)
    assert_one_line_error(result, "data source 'bad'", "the test noise recordings", "sample 3")


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_data_info_refuses_a_poisoned_split(bad, main_in_process, split):
    result = main_in_process("data", "info", "bad", "-o", "poison=split", "-o", f"split={split}")
    assert_one_line_error(result, "data source 'bad'", f"the {split} split", "sample 3")


def test_five_percent_nan_in_test_samples_is_refused_not_scored(bad, main_in_process, fault_home):
    """The issue's case: 5 % of the test samples NaN gave exit 0 and lower accuracies."""
    config = _config(fault_home, poison="split", split="test", fraction=0.05)
    line = assert_one_line_error(_evaluate(main_in_process, fault_home, config), "2 of 40 samples")
    assert "the test split" in line


# ---------------------------------------------------------------- on_error: skip leaves them out and counts them


@pytest.mark.parametrize(("split", "value"), [("test", "nan"), ("validation", "inf"), ("train", "-inf")])
def test_on_error_skip_leaves_poisoned_samples_out_and_counts_them(bad, split, value):
    from nrstream.data.datasets import NonFiniteSamplesWarning, load_dataset

    clean = load_dataset("bad")
    size = len(clean.splits[split])
    count = round(0.1 * size)  # the plugin poisons this many samples
    with pytest.warns(NonFiniteSamplesWarning, match=f"{count} of {size} samples of the {split} split .*skipped them"):
        data = load_dataset("bad", poison="split", split=split, value=value, fraction=0.1, on_error="skip")
    assert len(data.splits[split]) == size - count
    assert data.info["non_finite_skipped"] == {split: count}
    assert data.info["sizes"][split] == size - count
    for bank in [*data.splits.values(), *data.noise.values()]:
        assert bool(torch.isfinite(bank.features).all())


def test_on_error_skip_runs_and_records_the_count_in_results(bad, main_in_process, fault_home):
    config = _config(fault_home, poison="split", split="test", fraction=0.1, on_error="skip")
    result = _evaluate(main_in_process, fault_home, config)
    assert result.returncode == 0, str(result)
    assert "Traceback" not in result.stderr
    warned = [line for line in result.stderr.splitlines() if "warning" in line and "skipped them" in line]
    assert len(warned) == 1 and "4 of 40 samples of the test split" in warned[0]
    results = json.loads((fault_home / "run" / "results.json").read_text())
    assert results["data"]["non_finite_skipped"] == {"test": 4}
    assert results["data"]["sizes"]["test"] == 36
    for run in results["runs"]:
        assert all(math.isfinite(v) for v in run["accuracy_by_length"].values())


def test_on_error_skip_of_noise_recordings(bad):
    from nrstream.data.datasets import NonFiniteSamplesWarning, load_dataset

    with pytest.warns(NonFiniteSamplesWarning, match="the validation noise recordings"):
        data = load_dataset("bad", poison="noise", split="validation", on_error="skip")
    assert len(data.noise["validation"]) == 3 and data.info["non_finite_skipped"] == {"noise validation": 1}


def test_on_error_skip_with_every_sample_bad_is_still_refused(bad, main_in_process, fault_home):
    config = _config(fault_home, poison="split", split="validation", everything=True, on_error="skip")
    line = assert_one_line_error(_evaluate(main_in_process, fault_home, config), "16 of 16", "validation split")
    assert "nothing is left" in line


def test_on_error_must_be_raise_or_skip(bad, main_in_process):
    result = main_in_process("data", "info", "bad", "-o", "on_error=ignore")
    assert_one_line_error(result, "data source 'bad'", "on_error", "'ignore'")


def test_the_library_raises_data_file_error(bad):
    from nrstream.data.datasets import load_dataset
    from nrstream.errors import DataFileError

    with pytest.raises(DataFileError, match=r"the test split hold NaN or infinite features \(first: sample 3\)"):
        load_dataset("bad", poison="split", split="test")


def test_check_finite_returns_the_same_dataset_when_clean(bad):
    from nrstream.data.datasets import check_finite, load_dataset

    data = load_dataset("bad")
    assert check_finite(data, "bad") is data


# ---------------------------------------------------------------- loops: logits and loss


def test_nan_logits_in_evaluation_name_the_agent_and_chunk(bad, main_in_process, fault_home):
    config = _config(fault_home, arch="blowup", arch_options={"mode": "eval"}, validate=False)
    result = _evaluate(main_in_process, fault_home, config)
    assert "Traceback" not in result.stderr
    assert result.returncode != 0, str(result)
    failed = [line for line in result.stderr.splitlines() if "logits became NaN or infinite" in line]
    assert len(failed) == 1, str(result)
    assert "blowup" in failed[0] and "chunk 0" in failed[0] and "likely causes" in failed[0]
    written = fault_home / "run" / "results.json"
    if written.exists():  # strict JSON: no NaN was scored
        json.loads(written.read_text(), parse_constant=lambda token: pytest.fail(f"{token} in results.json"))


def test_nan_logits_in_validation_stop_training_and_keep_no_best(bad, main_in_process, fault_home):
    config = _config(fault_home, arch="blowup", arch_options={"mode": "eval"}, validate=True)
    result = main_in_process("train", config, "--checkpoints", fault_home / "ck", "--no-progress")
    assert "Traceback" not in result.stderr
    assert result.returncode != 0, str(result)
    lines = [line for line in result.stderr.splitlines() if "validation stream" in line]
    assert len(lines) == 1 and "blowup" in lines[0] and "after step" in lines[0], str(result)
    assert not list((fault_home / "ck").rglob("best.pt"))


def test_a_nan_loss_stops_training_naming_agent_and_step(bad, main_in_process, fault_home):
    config = _config(fault_home, arch="blowup", arch_options={"mode": "train"})
    result = main_in_process("train", config, "--checkpoints", fault_home / "ck", "--no-progress")
    assert result.returncode != 0, str(result)
    lines = [line for line in result.stderr.splitlines() if "the loss became nan at step 1" in line]
    assert len(lines) == 1 and "blowup" in lines[0] and "likely causes" in lines[0], str(result)


def test_decision_accuracy_raises_non_finite_error(bad):
    from nrstream import make_stream
    from nrstream.data.datasets import load_dataset
    from nrstream.errors import NonFiniteError
    from nrstream.lab.scoring import decision_accuracy
    from nrstream.plugin.registry import get_registry

    data = load_dataset("bad")
    model = get_registry().create("architecture", "blowup", input_size=4, num_classes=3)
    stream = make_stream(data, "test", num_lanes=2, seed=0)
    with pytest.raises(NonFiniteError, match="on the validation stream at chunk 0"):
        decision_accuracy(model, stream, "never", 2, 16, what="validation")
    assert model.training  # the model's mode is restored


def test_endless_run_raises_non_finite_error_after_the_run(bad):
    from nrstream import make_stream
    from nrstream.data.datasets import load_dataset
    from nrstream.errors import NonFiniteError
    from nrstream.lab.evaluation import endless_run
    from nrstream.plugin.registry import get_registry

    data = load_dataset("bad")
    model = get_registry().create("architecture", "blowup", input_size=4, num_classes=3)
    stream = make_stream(data, "test", num_lanes=2, seed=0)
    with pytest.raises(NonFiniteError, match=r"endless test stream at chunk 0 \(frames 0\.\.7\)"):
        endless_run(model, stream, "never", {}, 20, chunk_length=8)
