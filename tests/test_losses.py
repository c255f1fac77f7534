"""Built-in losses on hand-computed cases: exact values and gradients, options, registration."""

from __future__ import annotations

import math

import pytest
import torch
from nrstream_plugins._options import OptionError
from nrstream_plugins.losses import AdaptiveLoss, CrossEntropyLoss, ResetLoss, StateKLLoss
from nrstream_plugins.losses import functional as F

from nrstream.stream.stream import Chunk

C = 3


def make_chunk(label: list[list[int]], end: list[list[int]] | None = None) -> Chunk:
    """A chunk from labels alone (-1 = noise); ``end`` defaults to the last frame of each run."""
    label_t = torch.tensor(label)
    mask = label_t >= 0
    if end is None:
        nxt = torch.cat([label_t[:, 1:], torch.full_like(label_t[:, :1], -1)], 1)
        end_t = mask & (nxt != label_t)
    else:
        end_t = torch.tensor(end, dtype=torch.bool)
    prev = torch.cat([torch.full_like(label_t[:, :1], -1), label_t[:, :-1]], 1)
    start = mask & (prev != label_t)
    b, t = label_t.shape
    return Chunk(
        x=torch.zeros(b, t, 1),
        label=label_t,
        mask=mask,
        start=start,
        end=end_t,
        sample_index=torch.cumsum(start.long(), 1),
        sample_id=torch.where(mask, 0, -1),
    )


# one lane: sample of class 0 (2 frames), two noise frames, sample of class 2 (1 frame)
CHUNK = make_chunk([[0, 0, -1, -1, 2]])
LOGITS = torch.tensor(
    [[[2.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [3.0, 0.0, -1.0], [0.0, 1.0, 2.0]]], dtype=torch.float64
)


def nll(row: list[float], k: int) -> float:
    return math.log(sum(math.exp(v) for v in row)) - row[k]


def kl_u(row: list[float]) -> float:
    """KL(U || softmax(row)) by its definition, sum_k (1/C) log((1/C) / p_k)."""
    z = math.log(sum(math.exp(v) for v in row))
    return sum((1 / len(row)) * math.log((1 / len(row)) / math.exp(v - z)) for v in row)


ROWS = LOGITS[0].tolist()
CE_FRAMES = [nll(ROWS[0], 0), nll(ROWS[1], 0), nll(ROWS[4], 2)]
KL_NOISE = [kl_u(ROWS[2]), kl_u(ROWS[3])]


def test_kl_uniform_closed_form():
    kl = F.kl_uniform(LOGITS)
    logp = torch.log_softmax(LOGITS, -1)
    assert torch.allclose(kl, -math.log(C) - logp.mean(-1), rtol=0, atol=1e-15)
    assert kl[0, 2].item() == 0.0  # uniform prediction: no divergence
    assert kl[0, 3].item() == pytest.approx(KL_NOISE[1], abs=1e-14)
    assert (kl >= 0).all()


def test_ce_value_every_frame_and_noise_ignored():
    loss = CrossEntropyLoss()
    assert loss.protocol == "continual"
    assert loss(LOGITS, CHUNK, {}).item() == pytest.approx(sum(CE_FRAMES) / 3, abs=1e-14)
    # noise logits do not matter
    other = LOGITS.clone()
    other[0, 2:4] = 7.0
    assert loss(other, CHUNK, {}).item() == loss(LOGITS, CHUNK, {}).item()


def test_target_decision_counts_end_frames_only():
    loss = CrossEntropyLoss(target="decision")
    # decision frames: frame 1 (class 0) and frame 4 (class 2)
    assert loss(LOGITS, CHUNK, {}).item() == pytest.approx((CE_FRAMES[1] + CE_FRAMES[2]) / 2, abs=1e-14)
    other = LOGITS.clone()
    other[0, 0] = torch.tensor([-5.0, 5.0, 0.0])  # a non-decision sample frame
    assert loss(other, CHUNK, {}).item() == loss(LOGITS, CHUNK, {}).item()
    assert CrossEntropyLoss()(other, CHUNK, {}).item() != CrossEntropyLoss()(LOGITS, CHUNK, {}).item()


def test_reset_is_segmented_cross_entropy():
    loss = ResetLoss()
    assert loss.protocol == "segmented"
    assert loss(LOGITS, CHUNK, {}).item() == CrossEntropyLoss()(LOGITS, CHUNK, {}).item()


def test_ce_kl_separate_default():
    loss = AdaptiveLoss()
    assert (loss.protocol, loss.kl_weight, loss.normalise, loss.target) == ("continual", 1.0, "separate", "frames")
    expected = sum(CE_FRAMES) / 3 + sum(KL_NOISE) / 2
    assert loss(LOGITS, CHUNK, {}).item() == pytest.approx(expected, abs=1e-14)
    weighted = AdaptiveLoss(kl_weight=0.25)(LOGITS, CHUNK, {}).item()
    assert weighted == pytest.approx(sum(CE_FRAMES) / 3 + 0.25 * sum(KL_NOISE) / 2, abs=1e-14)


def test_ce_kl_joint():
    loss = AdaptiveLoss(normalise="joint", kl_weight=0.5)
    expected = (sum(CE_FRAMES) + 0.5 * sum(KL_NOISE)) / 5
    assert loss(LOGITS, CHUNK, {}).item() == pytest.approx(expected, abs=1e-14)


def test_ce_kl_decision_target_keeps_kl_on_noise():
    loss = AdaptiveLoss(target="decision")
    expected = (CE_FRAMES[1] + CE_FRAMES[2]) / 2 + sum(KL_NOISE) / 2
    assert loss(LOGITS, CHUNK, {}).item() == pytest.approx(expected, abs=1e-14)


def _targets(label: torch.Tensor) -> torch.Tensor:
    """One-hot on informative frames, uniform on noise frames: ``[B, T, C]``."""
    onehot = torch.nn.functional.one_hot(label.clamp_min(0), C).double()
    return torch.where((label >= 0)[..., None], onehot, torch.full_like(onehot, 1 / C))


@pytest.mark.parametrize("normalise", ["separate", "joint"])
@pytest.mark.parametrize("kl_weight", [1.0, 0.3])
def test_ce_kl_gradient_is_softmax_minus_target(normalise, kl_weight):
    torch.manual_seed(0)
    chunk = make_chunk([[1, 1, 1, -1, -1, 0, 0], [-1, 2, 2, -1, -1, -1, 1]])
    logits = torch.randn(2, 7, C, dtype=torch.float64, requires_grad=True)
    loss = AdaptiveLoss(kl_weight=kl_weight, normalise=normalise)
    (grad,) = torch.autograd.grad(loss(logits, chunk, {}), logits)
    mask = chunk.mask[..., None]
    n_ce, n_kl = chunk.mask.sum().item(), (~chunk.mask).sum().item()
    if normalise == "separate":
        ce_scale, kl_scale = 1 / n_ce, kl_weight / n_kl
    else:
        ce_scale, kl_scale = 1 / (n_ce + n_kl), kl_weight / (n_ce + n_kl)
    scale = torch.where(mask, torch.tensor(ce_scale, dtype=torch.float64), torch.tensor(kl_scale, dtype=torch.float64))
    expected = scale * (torch.softmax(logits.detach(), -1) - _targets(chunk.label))
    assert torch.allclose(grad, expected, rtol=0, atol=1e-15)


def test_empty_terms_give_zero_with_gradient():
    logits = torch.zeros(1, 2, C, dtype=torch.float64, requires_grad=True)
    noise_only = make_chunk([[-1, -1]])
    value = CrossEntropyLoss()(logits, noise_only, {})
    assert value.item() == 0.0
    (grad,) = torch.autograd.grad(value, logits)
    assert (grad == 0).all()


def test_ce_kl_state_consecutive_hidden_kl():
    chunk = make_chunk([[0, -1, -1]])
    hidden = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]]], dtype=torch.float64)
    logits = torch.zeros(1, 3, C, dtype=torch.float64)
    loss = StateKLLoss(kl_weight=2.0)
    assert loss.needs_hidden is True

    def kl(p_row, q_row):
        p = torch.softmax(torch.tensor(p_row, dtype=torch.float64), 0)
        q = torch.softmax(torch.tensor(q_row, dtype=torch.float64), 0)
        return float((p * (p / q).log()).sum())

    # pairs (0,1) and (1,2); both second frames are noise; the second pair has KL 0
    expected = math.log(C) + 2.0 * (kl([0.0, 1.0], [1.0, 0.0]) + 0.0) / 2
    assert loss(logits, chunk, {"hidden": hidden}).item() == pytest.approx(expected, abs=1e-14)
    with pytest.raises(OptionError, match="hidden"):
        loss(logits, chunk, {})


@pytest.mark.parametrize(
    ("factory", "config", "quoted"),
    [
        (CrossEntropyLoss, {"target": "last"}, "'last'"),
        (AdaptiveLoss, {"kl_weight": -1.0}, "-1.0"),
        (AdaptiveLoss, {"kl_weight": "big"}, "'big'"),
        (AdaptiveLoss, {"normalise": "mean"}, "'mean'"),
        (StateKLLoss, {"kl_frames": "some"}, "'some'"),
    ],
)
def test_bad_options_are_one_line_errors(factory, config, quoted):
    with pytest.raises(ValueError) as info:
        factory(**config)
    message = str(info.value)
    assert quoted in message and "\n" not in message


def test_registered_through_the_plugin_registry():
    from nrstream.plugin.registry import get_registry

    registry = get_registry()
    assert {"reset", "ce", "ce_kl", "ce_kl_state"} <= set(registry.names("loss"))
    loss = registry.create("loss", "ce_kl", kl_weight=0.5)
    assert isinstance(loss, AdaptiveLoss) and loss.kl_weight == 0.5
