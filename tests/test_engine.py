"""Training engine: protocols, checkpoints, and resume-after-interruption (toy stream, CPU)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from nrstream.lab.config import load_config
from nrstream.lab.engine import load_checkpoint, steps_per_epoch, train_agent
from nrstream.lab.evaluation import decision_accuracy, lanes_for_length, wilson_interval
from nrstream.lab.loading import load_data

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def toy_config(checkpoints: Path, **train):
    config = load_config(ROOT / "configs" / "toy.yaml")
    config.run.checkpoint_dir = str(checkpoints)
    config.train.progress = False
    for key, value in train.items():
        setattr(config.train, key, value)
    return config


class Interrupt(KeyboardInterrupt):
    pass


def stop_at(step_to_stop: int):
    def on_step(step: int) -> None:
        if step == step_to_stop:
            raise Interrupt

    return on_step


def quiet(_line: str) -> None:
    pass


@pytest.mark.parametrize(
    "loss, checkpoint_every, reset_state_every",
    [("ce_kl", 3, 0), ("ce_kl", 0, 0), ("reset", 3, 0), ("reset", 0, 0), ("ce", 3, 2)],
)
def test_resume_after_interruption_gives_the_same_weights(tmp_path, loss, checkpoint_every, reset_state_every):
    # 2 epochs of 5-7 steps; with checkpoint_every=0 the resumed run restarts from the first epoch's end
    kwargs = {"checkpoint_every": checkpoint_every, "lanes": 8, "samples_per_lane": 8}
    kwargs["reset_state_every"] = reset_state_every
    whole = toy_config(tmp_path / "whole", **kwargs)
    agent = dataclasses.replace(whole.agents[1], loss=loss)
    data = load_data(whole)
    per_epoch = steps_per_epoch(whole, data.dataset, "segmented" if loss == "reset" else "continual")
    assert per_epoch >= 3  # so that the interruption falls inside the second epoch
    done = train_agent(whole, agent, data, CPU, log=quiet)
    assert done.steps == 2 * per_epoch and not done.reused

    broken = toy_config(tmp_path / "broken", **kwargs)
    with pytest.raises(Interrupt):
        train_agent(broken, agent, data, CPU, on_step=stop_at(per_epoch + 2), log=quiet)
    partial = load_checkpoint(next((tmp_path / "broken").glob("*/last.pt")))
    assert not partial["finished"] and 0 < partial["step"] < 2 * per_epoch
    resumed = train_agent(broken, agent, data, CPU, log=quiet)
    assert resumed.steps == done.steps

    a = load_checkpoint(next((tmp_path / "whole").glob("*/last.pt")))
    b = load_checkpoint(next((tmp_path / "broken").glob("*/last.pt")))
    assert a["model"].keys() == b["model"].keys()
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    assert [h["loss"] for h in a["history"]] == pytest.approx([h["loss"] for h in b["history"]], abs=0)
    assert a["stream"]["frames_read"] == b["stream"]["frames_read"]


def test_finished_checkpoint_is_reused_and_loads_weights_only(tmp_path):
    config = toy_config(tmp_path / "ck", steps=3, validate=False)
    data = load_data(config)
    agent = config.agents[1]
    first = train_agent(config, agent, data, CPU, log=quiet)
    files = sorted(p.name for p in first.folder.iterdir())
    assert files == ["best.pt", "last.pt"]  # no temporary files left behind
    ckpt = torch.load(first.folder / "last.pt", weights_only=True)
    assert ckpt["finished"] and ckpt["step"] == 3 and ckpt["protocol"] == "continual"
    again = train_agent(config, agent, data, CPU, on_step=stop_at(1), log=quiet)
    assert again.reused and again.steps == 3
    for name, value in first.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[name])
    # a changed training setup gets its own folder
    config.train.lr = 0.02
    other = train_agent(config, agent, data, CPU, log=quiet)
    assert other.folder != first.folder and not other.reused


def test_validation_and_best_checkpoint(tmp_path):
    config = toy_config(tmp_path / "ck")
    data = load_data(config)
    result = train_agent(config, config.agents[1], data, CPU, log=quiet)
    history = result.history
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(0 <= h["val_accuracy"] <= 1 for h in history)
    best = load_checkpoint(result.folder / "best.pt")
    assert best["score"] == max(h["val_accuracy"] for h in history)
    for name, value in result.model.state_dict().items():  # evaluate.checkpoint: best
        assert torch.equal(value, best["model"][name])
    config.evaluate.checkpoint = "last"
    (result.folder / ".last.pt.999.tmp").write_bytes(b"half")  # as a kill during a save leaves it
    last = train_agent(config, config.agents[1], data, CPU, log=quiet)
    assert last.reused and not (result.folder / ".last.pt.999.tmp").exists()
    final = load_checkpoint(result.folder / "last.pt")["model"]
    for name, value in last.model.state_dict().items():
        assert torch.equal(value, final[name])


def test_decision_accuracy_counts_exactly_n_decisions_per_lane(tmp_path):
    config = toy_config(tmp_path / "ck")
    data = load_data(config)
    from nrstream.data.datasets import make_stream

    class Constant(torch.nn.Module):
        """Always predicts class 0: accuracy is the share of class-0 samples scored."""

        def initial_state(self, batch_size, device):
            return torch.zeros(batch_size, 1, device=device)

        def forward(self, x, state, reset=None, aux=None):
            logits = torch.zeros(*x.shape[:2], 4)
            logits[..., 0] = 1
            return logits, state

    for n in (1, 3, 8):
        lanes = lanes_for_length(n, 100, len(data.dataset.splits["test"]))
        assert lanes * n >= 128
        stream = make_stream(data.dataset, "test", num_lanes=lanes, gap_min=2, gap_max=8, seed=n)
        result = decision_accuracy(Constant(), stream, "never", n, chunk_length=7)
        assert result.total == lanes * n
        again = make_stream(data.dataset, "test", num_lanes=lanes, gap_min=2, gap_max=8, seed=n)
        chunk = again.next_chunk(n * (8 + 12))  # long enough for every lane's n-th decision
        scored = chunk.label[chunk.end & (chunk.sample_index <= n)]
        assert scored.numel() == lanes * n
        assert result.correct == int((scored == 0).sum())


def test_wilson_interval():
    lo, hi = wilson_interval(8500, 10000)
    assert lo == pytest.approx(0.84287, abs=1e-4) and hi == pytest.approx(0.85687, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0


def test_reset_state_every_bounds_the_training_streams(tmp_path):
    config = toy_config(tmp_path / "ck", steps=4, validate=False)
    data = load_data(config)
    agent = config.agents[1]
    carried = train_agent(config, agent, data, CPU, log=quiet)
    config.train.reset_state_every = 1
    bounded = train_agent(config, agent, data, CPU, log=quiet)
    assert bounded.folder != carried.folder
    weights = zip(carried.model.state_dict().values(), bounded.model.state_dict().values(), strict=True)
    assert not all(torch.equal(a, b) for a, b in weights)


@pytest.mark.parametrize("arch", ["rnn", "gru", "lstm", "ssm", "snn"])
def test_every_architecture_trains_resumes_and_evaluates(tmp_path, arch):
    """Nested-tuple states (lstm, snn) survive checkpoints; aux["hidden"] reaches losses and metrics."""
    from nrstream.lab.config import AgentConfig
    from nrstream.lab.evaluation import evaluate_agent

    config = toy_config(tmp_path / "ck", steps=3, checkpoint_every=1, validate=False)
    config.evaluate.lengths, config.evaluate.endless_samples = [1, 2], 8
    data = load_data(config)
    agent = AgentConfig(arch, "ce_kl_state", {"hidden_size": 8}, {})
    with pytest.raises(Interrupt):
        train_agent(config, agent, data, CPU, on_step=stop_at(2), log=quiet)
    result = train_agent(config, agent, data, CPU, log=quiet)
    assert result.steps == 3 and not result.reused
    evaluated = evaluate_agent(result.model, data.dataset, config, "oracle", CPU)
    assert evaluated["by_length"]["2"].total == 2 * 128
    assert evaluated["metrics"]["state_norm"]["mean"] > 0


class _Loss:
    """A loss whose value the test picks (NaN), under the protocol the test picks."""

    needs_hidden = False

    def __init__(self, protocol: str = "continual", value: float = float("nan")):
        self.protocol, self.value = protocol, value

    def __call__(self, logits, chunk, aux=None):
        return logits.sum() * self.value


@pytest.fixture
def test_loss():
    from nrstream.plugin.registry import get_registry

    registry = get_registry()
    registry.add("loss", "test_loss", _Loss, "tests")
    yield "test_loss"
    del registry._items["loss"]["test_loss"]


def test_a_nan_loss_names_its_likely_causes(tmp_path, test_loss):
    from nrstream.errors import NrstreamError

    config = toy_config(tmp_path / "ck", steps=3, validate=False)
    agent = dataclasses.replace(config.agents[1], loss=test_loss)
    with pytest.raises(NrstreamError) as caught:
        train_agent(config, agent, load_data(config), CPU, log=quiet)
    message = str(caught.value)
    assert "at step 1" in message and "\n" not in message
    for cause in ("data", "data.stream.noise_scale (1.0)", "train.lr (0.01)"):
        assert cause in message


def test_an_unknown_protocol_is_one_line_naming_the_loss_and_the_table(tmp_path, test_loss):
    from nrstream.errors import NrstreamError
    from nrstream.plugin.protocols import PROTOCOLS

    config = toy_config(tmp_path / "ck", steps=1)
    agent = dataclasses.replace(config.agents[1], loss=test_loss, loss_options={"protocol": "sometimes"})
    with pytest.raises(NrstreamError, match="loss 'test_loss' has protocol 'sometimes'") as caught:
        train_agent(config, agent, load_data(config), CPU, log=quiet)
    assert all(repr(name) in str(caught.value) for name in PROTOCOLS)
    assert not (tmp_path / "ck").exists()  # refused before anything was written


def test_validation_warmup_scores_exactly_the_decisions_after_the_warm_up():
    """decision_accuracy(warmup=w, n): the agent runs w decisions per lane unscored, then scores the next n."""
    from nrstream import create
    from nrstream.data.datasets import load_dataset, make_stream

    toy = load_dataset("toy")
    torch.manual_seed(0)
    model = create("architecture", "gru", input_size=toy.feature_size, num_classes=toy.num_classes, hidden_size=8)

    def score(n: int, warmup: int = 0):
        stream = make_stream(toy, "validation", num_lanes=6, seed=3)  # gaps 5..30: a never-reset agent warms up
        return decision_accuracy(model, stream, "never", n, chunk_length=16, warmup=warmup)

    first_two, first_five, warm = score(2), score(5), score(3, warmup=2)
    assert warm.total == 6 * 3
    # the same frames, the same chunks: the warm decisions are the first five minus the first two
    assert warm.correct == first_five.correct - first_two.correct
    assert score(3, warmup=0).total == 6 * 3


def test_validation_warmup_is_a_train_key_applied_to_state_carrying_protocols_only(tmp_path, monkeypatch):
    import nrstream.lab.engine as engine
    from nrstream import create

    config = toy_config(tmp_path)
    data = load_data(config).dataset
    model = create("architecture", "gru", input_size=data.feature_size, num_classes=data.num_classes, hidden_size=8)
    seen = []
    real = engine.decision_accuracy
    monkeypatch.setattr(engine, "decision_accuracy", lambda *a, **k: seen.append(k["warmup"]) or real(*a, **k))
    config.train.validation_warmup = 2
    for protocol in ("segmented", "continual"):
        engine.validate(model, data, config, protocol, torch.device("cpu"))
    assert seen == [0, 2]  # oracle resets start every sample cold anyway; a never-reset agent is scored warm
