"""The transfer benchmarks' stage-2 planning (benchmarks/transfer_stages.py), without training:
fit_stage is replaced by a recorder, so only the budget arithmetic and the stage names are checked."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from transfer_stages import SETUP_S, Stages  # noqa: E402


def recording_stages(tmp_path, earlier_s):
    st = Stages(tmp_path)
    st.rows = [("0 zero-shot", 0.5, earlier_s, earlier_s / 60)]
    calls = []
    st.fit_stage = lambda name, overrides: calls.append((name, overrides))
    return st, calls


def test_minutes_give_stage2_what_is_left(tmp_path):
    st, calls = recording_stages(tmp_path, earlier_s=100.0)
    st.features_then_unfreeze({}, "w", {}, {"transfer.unfreeze": [0], "transfer.freeze_first": 42}, 3, minutes=10)
    (name1, cfg1), (name2, cfg2) = calls
    assert cfg1["transfer.mode"] == "features" and cfg1["transfer.pretrained"] == "w"
    assert cfg2["train.time_budget"] == 600 - 100 - SETUP_S
    assert cfg2["transfer.pretrained"].endswith("stage1-features/checkpoints/last.pt")
    assert name2 == f"2 unfreeze at epochs [0], budget {600 - 100 - SETUP_S} s, first 42 layers frozen"


def test_default_stage2_keeps_its_name_and_has_no_budget(tmp_path):
    st, calls = recording_stages(tmp_path, earlier_s=100.0)
    st.features_then_unfreeze({}, "w", {}, {}, 3)
    name2, cfg2 = calls[1]
    assert name2 == "2 head + last stage (epoch 1), then all layers (epochs 2-3)"
    assert "train.time_budget" not in cfg2 and cfg2["transfer.unfreeze"] == [0, 1]


def test_too_few_minutes_left_is_refused(tmp_path):
    st, calls = recording_stages(tmp_path, earlier_s=550.0)  # 600 - 550 - SETUP_S < 60
    with pytest.raises(SystemExit, match="under a minute is left"):
        st.features_then_unfreeze({}, "w", {}, {}, 3, minutes=10)


def test_progressive_stage2_is_named_apart_from_the_plain_one(tmp_path):
    """Finished stages are read back by name on a rerun, so a progressive stage 2, or one with another
    seed, must not be taken for a plain one finished earlier in the same --out (the plain name stays
    as it was)."""
    names = []
    for extra in ({}, {"augment.progressive_from": 112}, {"augment.progressive_from": 112, "train.seed": 1}):
        st, calls = recording_stages(tmp_path, earlier_s=100.0)
        st.features_then_unfreeze({}, "w", {}, {"transfer.unfreeze": [0], "transfer.freeze_first": 42, **extra}, 3,
                                  minutes=10)
        names.append(calls[1][0])
    assert names[0] == f"2 unfreeze at epochs [0], budget {600 - 100 - SETUP_S} s, first 42 layers frozen"
    assert names[1] == names[0] + ", progressive from 112 px"
    assert names[2] == names[1] + ", seed 1"


def test_no_features_skips_stage1_and_starts_stage2_from_the_weights(tmp_path):
    """--no-features: only stage 2 runs, from the ImageNet weights, in its own run dir and under its own
    name, with all of what is left of the minutes (nothing was spent on a stage 1)."""
    st, calls = recording_stages(tmp_path, earlier_s=100.0)
    st.features_then_unfreeze({}, "w", {"train.epochs": 8}, {"transfer.unfreeze": [0], "transfer.freeze_first": 42},
                              3, minutes=10, features=False)
    [(name, cfg)] = calls
    assert cfg["transfer.pretrained"] == "w" and cfg["transfer.mode"] == "gradual"
    assert cfg["output.dir"] == str(tmp_path / "stage2-from-imagenet")
    assert cfg["train.time_budget"] == 600 - 100 - SETUP_S
    assert name == (f"2 unfreeze at epochs [0], budget {600 - 100 - SETUP_S} s, from the ImageNet weights "
                    "(no stage 1), first 42 layers frozen")


def test_ready_made_transfer_config_is_the_measured_hour_run():
    """configs/tiny-imagenet-transfer.yaml is the README's hour run, 0.7853 mean of 3 seeds
    (transfer_tiny_imagenet.py --model efficientnet_lite2 --size 160 --unfreeze 0 --freeze-first 42
    --tta --no-features), as one `tinyvision train`: every setting that shapes training equal, so
    the two cannot drift apart."""
    from transfer_stages import WEIGHTS, common_overrides
    from transfer_tiny_imagenet import STAGE2

    from tinyvision.engine import load_config

    cfg = load_config("tiny-imagenet-transfer")
    common = common_overrides("tiny-imagenet", "zip", Path("cache"), "efficientnet_lite2", 160)  # nothing is built
    bench = load_config(None, {**common, **STAGE2, "transfer.pretrained": WEIGHTS["efficientnet_lite2"],
                               "transfer.mode": "gradual", "transfer.unfreeze": [0], "transfer.freeze_first": 42,
                               "train.tta": True, "train.epochs": 3, "train.checkpoint_every": 100})
    for section in ("model", "transfer", "optim", "schedule", "augment"):
        assert getattr(cfg, section) == getattr(bench, section), section
    for key in ("epochs", "batch_size", "tta", "checkpoint_every", "seed"):
        assert getattr(cfg.train, key) == getattr(bench.train, key), key
    assert cfg.data.name == "tiny-imagenet" and cfg.train.time_budget == 58 * 60
