"""The config schema: keys are fields, and everything about a key follows from its one line.

The checkpoint keys below were computed by the hand-listed ``agent_key`` of ``nrstream/lab/config.py``
before the schema existed (commit 5fcc861): checkpoint folders are named by them, so they must never
change for an existing config.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from nrstream.errors import ConfigError
from nrstream.lab.config import (
    EvaluateConfig,
    TrainConfig,
    agent_key,
    identity,
    key,
    load_config,
    parse_config,
    reference_rows,
)
from nrstream.lab.config.read import Ctx
from nrstream.lab.config.reference import reference_table
from nrstream.lab.config.validate import _build

ROOT = Path(__file__).resolve().parent.parent

PINNED = {
    # the new families (issue 28), computed with the hand-listed rule of f428d15's nrstream/config.py
    "configs/families.yaml": [
        "3261aaa1403c68ce", "f3ae77e8ec0f2635", "27aeeec108559da6", "21719256ff966fa6", "43681dd105a9e3bb",
        "e50f3f5826ddf803", "f216ef79112c349d", "a54ea5151a4903fc", "be4a3056f40571a4", "ee8b8ee64ab86a30",
        "3609080d1c98cec9", "5ba20e4d54483845",
    ],
    # prequential studies (issue 27): their keys would name checkpoints, which `nrstream prequential` keeps none of
    "configs/continual/fmnist_class_incremental.yaml": [
        "0325e2ebd6fe2874", "49354753a82da8ba", "b97e20913fd19137", "1997ee95115045d7", "a93caa9c21586e1b",
        "815218f8cdbdc3f8",
    ],
    "configs/continual/speech_class_incremental.yaml": ["45ea475f7b745967", "66254c7bbaf30624", "9f38255ab34ddd37"],
    # issue 27 item 1, the domain: phases that change the scene's SNR and level
    "configs/continual/speech_domain_incremental.yaml": ["b6cc6441c0957f32", "b4e1bc5b9015cfdc", "b44e9295aa7b6c20"],
    "configs/continual/fmnist_domain_incremental.yaml": [
        "755d37eb2a92063c", "b77e4ee806828d88", "eaafec4bb90a326c", "067470b53f078abc", "9ae4fe1b1a85bf58",
        "7b825b9b0591ddce",
    ],
    # issue 24 (added after 5fcc861: the keys of the rule as it stands)
    "configs/fsdd.yaml": ["82fc01edfa36fe0a", "b751f5213f506087", "814b36d203def36a"],
    "configs/fsdd_speakers.yaml": ["18addbfc04ad30e9", "a358f86f3cf4d2fe", "96be196ae15a9922"],
    "configs/fmnist.yaml": [
        "7eac1d861ca066ba", "2947f7d5bd315316", "8b54a82bab8f4c7d", "45055bbbe7bc588b", "537181a9970aee25",
        "b212cf1850b821a5", "6ac2755eed1972da", "ee2bfbee567dd6d5", "114b1f1c6802f6c6", "c52bbfa26c883cbc",
        "95095f399acc21cf", "291a24598ece52d7",
    ],
    "configs/paper/fmnist.yaml": [
        "b51ded9fa369e6b1", "369cbd40356ba29c", "adf0689497db740c", "e57dfef265e854f1", "fb08f21025840c37",
        "6988f65a65db520d", "7b892af5b1b338ce", "46b1ede3952d39e2", "77801bc386f3d40e", "bd6949c46aab09db",
        "4568a56908defd87", "bf21fb8f0c644314",
    ],
    "configs/paper/speech.yaml": ["a2f3f79c429ec820", "0ee9bc188f17485c", "7c48aecf7792f6bd"],
    "configs/quickstart.yaml": ["45055bbbe7bc588b", "537181a9970aee25", "b212cf1850b821a5"],
    "configs/saturation.yaml": ["537181a9970aee25", "b212cf1850b821a5", "2947f7d5bd315316", "8b54a82bab8f4c7d"],
    "configs/saturation_loud.yaml": ["0b6c121dc29eb94f", "140d1606ff39b523", "e9bb82c9e3900336", "8ce946078b693d0f"],
    "configs/saturation_short.yaml": ["24f4ff2c62e50ed9", "15e8f94b9eacdfe3", "5c188cae8b7a5ccb", "6f8daa4222d43149"],
    "configs/speech.yaml": [
        "7657292f1f34233c", "b3a95832f3bf9957", "3f85c387f7f10a61", "35140b05370d2c23", "3d5ca11a0d16a9f1",
        "08509856070a571e", "e50820f8bd9a5ad2", "840dfe4862f2a41e", "54704f860358b761", "26fe6963507ed4dc",
        "f97fdd391c26733a", "c45690075e19e497",
    ],
    "configs/speech_quick.yaml": ["49019048ff618cb3", "2e75d0a48a12746c", "b44cd1159a0daa4a"],
    "configs/toy.yaml": ["afcba7973aa61b77", "c13f467a820b3fcb"],
}  # fmt: skip

#: overrides of configs/toy.yaml -> the keys of its two agents (also from commit 5fcc861)
PINNED_OVERRIDES = {
    "early stopping": (["train.patience=2", "train.min_delta=0.01", "train.min_epochs=1"],
                       ["943ea0373969e170", "a11362bbaa7ade81"]),
    "state resets": (["train.reset_state_every=4"], ["d33102554a007c8e", "33b3cb25c8c102c5"]),
    "scene": (["data.stream.background=recorded", "data.stream.snr_db=[5, 10]"],
              ["af1d4b82645ea9e6", "7d08f760b672446c"]),
    "keys outside the identity": (
        ["run.name=x", "run.device=cpu", "train.progress=false", "train.checkpoint_every=7", "evaluate.lengths=[1]",
         "run.resources.num_cpus=2", "evaluate.stream={gap_min: 0}"],
        ["afcba7973aa61b77", "c13f467a820b3fcb"],
    ),
    "seeds": (["run.seeds=[3,4]"], ["7fcb447ced1740e4", "d1aa534b15242b7d"]),
    "fallback": (["data.fallback=toy", "data.fallback_options={num_classes: 3}"],
                 ["a29eeeb5c816bf98", "4c07f9a01a5955f7"]),
}  # fmt: skip


def test_every_bundled_config_is_pinned():
    assert sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs").rglob("*.yaml")) == sorted(PINNED)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_checkpoint_keys_of_the_bundled_configs_are_those_of_the_hand_listed_rule(name):
    config = load_config(ROOT / name, check_plugins=False)
    assert [agent_key(config, a) for a in config.agents] == PINNED[name]


@pytest.mark.parametrize("case", sorted(PINNED_OVERRIDES))
def test_checkpoint_keys_under_overrides_are_those_of_the_hand_listed_rule(case):
    overrides, expected = PINNED_OVERRIDES[case]
    config = load_config(ROOT / "configs/toy.yaml", overrides=overrides, check_plugins=False)
    assert [agent_key(config, a) for a in config.agents] == expected


def test_checkpoint_keys_with_a_served_source_and_a_job_seed():
    config = load_config(ROOT / "configs/toy.yaml", check_plugins=False)
    served = {"source": "toy", "options": {"n": 1}}
    assert [agent_key(config, a, served) for a in config.agents] == ["51b45dbeb1e83537", "243c0edb56b27bc0"]
    assert [agent_key(config, a, seed=5) for a in config.agents] == ["c29eec5c27572c86", "7d1064591f3130fd"]


def test_the_identity_rules_on_the_fields():
    """What is in a checkpoint key, read from the fields: train keys but not progress or cadence, no evaluate."""
    config = parse_config({"agents": [{"arch": "gru", "loss": "ce"}]}, check_plugins=False)
    train = identity(config.train)
    assert "progress" not in train and "checkpoint_every" not in train and train["epochs"] == 3
    assert "patience" not in train  # "unless_default": a key added later keeps older checkpoints' keys
    assert identity(dataclasses.replace(config.train, patience=2))["patience"] == 2
    assert identity(config.evaluate) == {} and identity(config.run) == {"seed": 0}
    assert identity(config.data)["stream"] == config.data.stream.identity()


@dataclasses.dataclass
class _Train(TrainConfig):
    """TrainConfig with one more key, added the documented way (CONTRIBUTING: a config key)."""

    warmup: int = key(0, "linear learning-rate warm-up (steps)", bounds=(0, 10**9))


def test_a_new_train_key_is_one_line():
    """Its type and range checks, its reference row and its identity rule all follow from the line."""
    assert ("warmup", "int 0..10**9", "0", "linear learning-rate warm-up (steps)") in reference_rows(_Train)
    ctx = Ctx("x.yaml")
    assert _build(ctx, "train", {"warmup": 10}, _Train).warmup == 10
    with pytest.raises(ConfigError, match=r"^x.yaml: train.warmup: must be <= 10\*\*9, got 2000000000$"):
        _build(ctx, "train", {"warmup": 2 * 10**9}, _Train)
    with pytest.raises(ConfigError, match=r"^x.yaml: train.warmup: expected an integer, got 'a' \(str\)$"):
        _build(ctx, "train", {"warmup": "a"}, _Train)
    assert identity(_Train()) == identity(TrainConfig())  # unset: existing checkpoint keys stay
    assert identity(_Train(warmup=5)) == {**identity(TrainConfig()), "warmup": 5}


def test_a_new_evaluate_key_never_enters_the_checkpoint_key():
    @dataclasses.dataclass
    class Evaluate(EvaluateConfig):
        bootstrap: int = key(0, "bootstrap resamples")

    assert identity(Evaluate(bootstrap=100)) == {}


def test_the_reference_table_is_generated_from_the_fields():
    table = reference_table().splitlines()
    rows = {line.split()[0]: line for line in table if line and not line.startswith((" ", "="))}
    assert rows["train.lr"].split() == ["train.lr", "float", "0..10", "(>", "0)", "0.003", "AdamW", "learning", "rate"]
    assert rows["run.seeds"].split()[:5] == ["run.seeds", "list", "of", "int", "or"]
    assert rows["evaluate.checkpoint"].split()[1:5] == ["best", "|", "last", "``best``"]
    assert max(len(line) for line in table) <= 120


def test_a_cross_field_rule_lives_in_its_section():
    with pytest.raises(ConfigError) as info:
        parse_config({"agents": [{"arch": "gru", "loss": "ce"}], "train": {"min_epochs": 2}}, "x.yaml")
    assert str(info.value) == (
        "x.yaml: train.min_epochs: only delays early stopping, which is off; set train.patience (> 0) or drop it"
    )
