"""The engine: config precedence, schedules, EMA, early stopping, NaN, the overwrite guard, summary."""
import json
import math

import numpy as np
import pytest
import torch
import yaml
from torch import nn

import fixtures
from tinyvision.engine import Config, fit, load_config
from tinyvision.checkpoint import load_checkpoint
from tinyvision.engine.config import ScheduleConfig
from tinyvision.engine.optim import Schedule, build_optimizer, param_groups
from tinyvision.errors import TinyVisionError


def small_config(src, out, **over) -> Config:
    """A seconds-long run: quicknet at a tenth of its width on a 28 px IDX fixture."""
    cfg = load_config(None, {
        "data.name": "fashion-mnist", "data.source": str(src), "model.name": "quicknet",
        "model.kwargs": {"widths": [8, 16], "stem": 8}, "train.epochs": 2, "train.batch_size": 16,
        "train.eval_batch_size": 32, "train.log_every": 2, "output.dir": str(out), "output.quiet": True,
        "output.tensorboard": False, "augment.policy": "flip", "optim.lr": 0.05})
    for k, v in over.items():
        cfg.override(k.replace("__", "."), v)
    return cfg


@pytest.fixture
def idx_src(tmp_path):
    return fixtures.idx_dataset(tmp_path / "fmnist", n_train=96, n_test=40)


# ------------------------------------------------------------------ config
def test_config_precedence_defaults_then_yaml_then_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"optim": {"lr": 0.5, "name": "adam"}, "train": {"epochs": 7}}))
    cfg = load_config(str(p), ["optim.lr=0.25", "model.kwargs={dropout: 0.1}"])
    assert cfg.optim.lr == 0.25  # override beats YAML
    assert cfg.optim.name == "adam" and cfg.train.epochs == 7  # YAML beats defaults
    assert cfg.train.batch_size == Config().train.batch_size  # default kept
    assert cfg.model.kwargs == {"dropout": 0.1}
    assert isinstance(cfg.optim.lr, float) and isinstance(load_config(None, ["optim.lr=1"]).optim.lr, float)
    base = Config()
    assert load_config(None, ["optim.lr=0.3"], base).optim.lr == 0.3 and base.optim.lr == Config().optim.lr


@pytest.mark.parametrize("key, hint", [("optim.lrr", "optim.lr"), ("train.epoch", "train.epochs"),
                                       ("optimizer.lr", "optim.lr"), ("lr", "optim.lr")])
def test_unknown_key_names_closest(key, hint):
    with pytest.raises(TinyVisionError, match="unknown config key") as e:
        load_config(None, [f"{key}=1"])
    assert hint in str(e.value)


def test_unknown_key_in_yaml_names_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train:\n  epocs: 3\n")
    with pytest.raises(TinyVisionError, match=r"bad\.yaml.*train\.epochs"):
        load_config(str(p))


def test_wrong_type_is_an_error():
    with pytest.raises(TinyVisionError, match="train.epochs.*int"):
        load_config(None, ["train.epochs=many"])
    with pytest.raises(TinyVisionError, match="key=value"):
        load_config(None, ["train.epochs"])


def test_ready_made_configs_all_load():
    from tinyvision.engine.config import BUILTIN_CONFIGS
    from tinyvision.models import get_entry

    names = sorted(BUILTIN_CONFIGS.glob("*.yaml"))
    assert len(names) >= 10
    for p in names:
        cfg = load_config(p.stem)
        get_entry(cfg.model.name)  # names a registered model
    s002 = load_config("seed002-net1")
    assert (s002.optim.name, s002.optim.lr, s002.optim.momentum, s002.optim.weight_decay, s002.train.batch_size) == (
        "sgd", 0.01, 0.9, 0.0005, 256)


# ------------------------------------------------------------------ optimizers and schedules
def _schedule(name, epochs=10, spe=10, lr=1.0, **kw):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    return Schedule(opt, ScheduleConfig(name=name, **kw), lr, spe, epochs), opt


def _curve(name, **kw):
    sched, opt = _schedule(name, **kw)
    lrs = []
    for _ in range(sched.total):
        lrs.append(opt.param_groups[0]["lr"])
        sched.step()
    return lrs


def test_schedule_curves():
    assert _curve("constant") == [1.0] * 100
    step = _curve("step", step_epochs=3, gamma=0.1)
    assert step[29] == 1.0 and math.isclose(step[30], 0.1) and math.isclose(step[60], 0.01)
    multi = _curve("multistep", milestones=[2, 5], gamma=0.5)
    assert multi[19] == 1.0 and multi[20] == 0.5 and multi[49] == 0.5 and multi[50] == 0.25
    cos = _curve("cosine", min_lr=0.1)
    assert cos[0] == 1.0 and math.isclose(cos[50], 0.55, rel_tol=1e-9) and 0.1 < cos[-1] < 0.1003
    assert all(a >= b for a, b in zip(cos, cos[1:]))
    warm = _curve("cosine", warmup_epochs=2)
    assert warm[0] == 0.0 and math.isclose(warm[10], 0.5) and warm[20] == 1.0 and warm[21] < 1.0
    td = _curve("time-decay", decay=0.01)
    assert td[0] == 1.0 and math.isclose(td[50], 1 / 1.5) and math.isclose(td[99], 1 / 1.99)
    oc = _curve("onecycle", pct_start=0.25, div_factor=25, final_div_factor=1e4)
    assert math.isclose(oc[0], 1 / 25) and oc[25] == 1.0 and oc.index(max(oc)) == 25
    assert 1 / 25 / 1e4 < oc[-1] < 1e-3 and all(a >= b for a, b in zip(oc[25:], oc[26:]))


def test_onecycle_matches_torch():
    lrs = _curve("onecycle", pct_start=0.3, div_factor=10, final_div_factor=100)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=101, pct_start=0.3, div_factor=10,
                                              final_div_factor=100, cycle_momentum=False)
    torch_lrs = []
    for _ in range(100):
        torch_lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    # torch counts total_steps - 1 annealing intervals; ours spans exactly the run: compare the shape
    assert max(abs(a - b) for a, b in zip(lrs, torch_lrs)) < 0.03


def test_plateau_cuts_after_patience_and_resumes():
    sched, opt = _schedule("plateau", patience=1, gamma=0.5)
    for metric in (0.5, 0.6, 0.6, 0.6):
        sched.epoch_end(metric)
    assert opt.param_groups[0]["lr"] == 0.5  # two epochs without improvement beyond patience 1
    state = sched.state_dict()
    again, opt2 = _schedule("plateau", patience=1, gamma=0.5)
    again.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == 0.5


def test_no_weight_decay_on_norms_and_biases():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(1, 3, 5, 5))
    decay, no_decay = param_groups(model, 5e-4, False)
    assert [p.ndim for p in decay["params"]] == [4, 2]
    assert all(p.ndim == 1 for p in no_decay["params"]) and no_decay["weight_decay"] == 0.0
    assert len(param_groups(model, 5e-4, True)) == 1
    from tinyvision.engine.config import OptimConfig

    for name in ("sgd", "adam", "adamw", "rmsprop"):
        assert build_optimizer(model, OptimConfig(name=name)).param_groups[0]["weight_decay"] == 5e-4
    with pytest.raises(TinyVisionError, match="unknown optimizer"):
        build_optimizer(model, OptimConfig(name="lion"))


def test_norm_lr_scale_groups_norm_layers_and_keeps_the_decay_step():
    # airbench's groups: BN shifts at 64x the lr, a conv's bias at the base lr, and with decay on,
    # the same lr x weight decay shrink per step in every group
    model = nn.Sequential(nn.Conv2d(3, 4, 2, bias=True), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2, bias=False))
    model(torch.zeros(1, 3, 5, 5))
    model[1].weight.requires_grad_(False)
    decay, bias, scaled = param_groups(model, 0.01, True, 64.0)
    assert [p.ndim for p in decay["params"]] == [4, 2] and decay["weight_decay"] == 0.01
    assert bias["params"] == [model[0].bias] and bias["weight_decay"] == 0.01 and "lr_scale" not in bias
    assert scaled["params"] == [model[1].bias] and scaled["lr_scale"] == 64.0
    assert scaled["lr_scale"] * scaled["weight_decay"] == pytest.approx(0.01)
    off = param_groups(model, 0.01, False, 64.0)
    assert [g["weight_decay"] for g in off] == [0.01, 0.0, 0.0]
    no_bias = nn.Sequential(nn.Conv2d(3, 4, 2, bias=False), nn.BatchNorm2d(4))
    assert [len(g["params"]) for g in param_groups(no_bias, 0.01, False, 16.0)] == [1, 2]  # no empty group


# ------------------------------------------------------------------ fit
def test_fit_writes_run_dir_and_summary(tmp_path, idx_src):
    out = tmp_path / "run"
    cfg = small_config(idx_src, out, output__tensorboard=True)
    s = fit(cfg)
    assert cfg.to_dict() == small_config(idx_src, out, output__tensorboard=True).to_dict()  # fit leaves it alone
    saved = json.loads((out / "summary.json").read_text())
    assert saved == json.loads(json.dumps(s))
    for k in ("top1", "top5", "epoch"):
        assert k in saved["best"]
    assert 0 <= saved["final"]["top1"] <= 1 and 0 <= saved["final"]["top5"] <= 1
    assert saved["epochs"] == 2 and saved["val_split"] == "test" and saved["params"] > 0
    assert saved["wall_time_s"] > 0 and saved["images_per_s"] > 0
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [l for l in lines if l["type"] == "step"]
    epochs = [l for l in lines if l["type"] == "epoch"]
    assert [l["step"] for l in steps] == list(range(2, 13, 2))  # 6 steps per epoch, logged every 2
    assert all({"step", "epoch", "train_loss", "lr", "images_per_s"} <= set(l) for l in steps)
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert {"train_loss", "val_loss", "val_top1", "val_top5", "seconds"} <= set(epochs[0])
    assert epochs[-1]["val_top1"] == saved["final"]["top1"]
    assert any((out / "tensorboard").iterdir())
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert Config.from_dict(cfg).to_dict() == small_config(idx_src, out, output__tensorboard=True).to_dict()
    for name in ("last", "best"):
        ck = torch.load(out / "checkpoints" / f"{name}.pt", weights_only=True)
        assert {"model", "optimizer", "scheduler", "epoch", "step", "rng", "loader", "config"} <= set(ck)
    assert ck["record"]["class_names"][0] == "T-shirt/top"


def test_run_dir_is_never_overwritten(tmp_path, idx_src):
    out = tmp_path / "run"
    fit(small_config(idx_src, out, train__epochs=1))
    before = (out / "checkpoints" / "last.pt").read_bytes()
    with pytest.raises(TinyVisionError, match="already holds a run.*--resume"):
        fit(small_config(idx_src, out, train__epochs=2))
    assert (out / "checkpoints" / "last.pt").read_bytes() == before
    s = fit(small_config(idx_src, out, train__epochs=2, output__if_exists="resume"))
    assert s["epochs"] == 2
    with pytest.raises(TinyVisionError, match="no run to resume"):
        fit(small_config(idx_src, tmp_path / "empty"), resume=True)


def test_early_stopping(tmp_path, idx_src):
    # lr 0: val never improves after epoch 1, so patience 2 stops after epoch 3.
    s = fit(small_config(idx_src, tmp_path / "run", train__epochs=10, train__early_stop_patience=2, optim__lr=0.0,
                         schedule__name="constant"))
    assert s["stopped"] == "early-stopped" and s["epochs"] == 3 and s["best"]["epoch"] == 1


def test_ema_weights_are_what_val_measures(tmp_path, idx_src):
    from tinyvision.data import prepare
    from tinyvision.data.augment import build_augment
    from tinyvision.data.loader import BatchLoader
    from tinyvision.engine.loop import evaluate
    from tinyvision.models import create_model

    out = tmp_path / "run"
    s = fit(small_config(idx_src, out, optim__ema=0.9))
    ck = load_checkpoint(out / "checkpoints" / "last.pt")
    assert any(not torch.equal(ck["ema"][k], ck["model"][k]) for k in ck["model"] if ck["model"][k].is_floating_point())
    ds = prepare("fashion-mnist", str(idx_src))
    loader = BatchLoader(ds.split("test"), 32, shuffle=False, transform=build_augment("none", ds.mean, ds.std, 28))
    model = create_model("quicknet", 10, 1, widths=[8, 16], stem=8)
    model.load_state_dict(ck["ema"])
    ema_top1 = evaluate(model, loader, torch.bfloat16)["top1"]
    assert ema_top1 == s["final"]["top1"]


def test_demo_recipe_sets_its_whitening_stem_from_the_grayscale_training_images(tmp_path, idx_src):
    """The demo (configs/fashion-mnist.yaml) has a 1-channel whitening stem, set from the run's
    own normalized training images before the first step and saved frozen (that it whitens is
    test_models' whitening test)."""
    from tinyvision.data import prepare
    from tinyvision.data.augment import build_augment
    from tinyvision.models import create_model
    from tinyvision.runs import load_model

    out = tmp_path / "demo"
    cfg = load_config("fashion-mnist", {"data.source": str(idx_src), "train.epochs": 1, "train.batch_size": 32,
                                        "output.dir": str(out), "output.quiet": True, "output.tensorboard": False})
    fit(cfg)
    stem = load_model(out, "last").model.whiten.weight.detach()
    assert stem.shape == (8, 1, 2, 2) and torch.equal(stem[4:], -stem[:4])  # 4 filters and their negatives
    ds = prepare("fashion-mnist", str(idx_src))
    images = torch.from_numpy(np.array(ds.split("train").images)).permute(0, 3, 1, 2)
    fresh = create_model("quicknet", num_classes=10, in_chans=1, whiten=True)
    before = fresh.whiten.weight.detach().clone()
    fresh.init_from_data(build_augment("none", ds.mean, ds.std, 28)(images))
    assert not torch.allclose(before, stem) and torch.allclose(fresh.whiten.weight, stem, rtol=1e-4, atol=1e-5)


class NanAfter(nn.Module):
    """Finite for 4 training steps, then NaN logits."""

    def __init__(self, num_classes=10, in_chans=1, **kw):
        super().__init__()
        self.fc = nn.Linear(in_chans, num_classes)
        self.calls = 0

    def forward(self, x):
        self.calls += self.training
        out = self.fc(x.mean((2, 3)))
        return out * float("nan") if self.training and self.calls >= 5 else out


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, idx_src, monkeypatch):
    import importlib

    fit_module = importlib.import_module("tinyvision.engine.train")  # the module that calls create_model

    monkeypatch.setattr(fit_module, "create_model", lambda name, num_classes, in_chans, **kw: NanAfter(num_classes, in_chans))
    out = tmp_path / "run"
    with pytest.raises(TinyVisionError, match=r"loss became nan at step 5.*last good checkpoint"):
        fit(small_config(idx_src, out, train__checkpoint_every=1))
    ck = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ck["step"] == 4
    assert all(torch.isfinite(v).all() for v in ck["model"].values())
    assert not (out / "summary.json").exists()


def test_model_input_size_checked(tmp_path, idx_src):
    with pytest.raises(TinyVisionError, match="seed002-net1 takes 64 px"):
        fit(small_config(idx_src, tmp_path / "run", model__name="seed002-net1", model__kwargs={}))


def test_holdout_and_limit_train(tmp_path, idx_src):
    s = fit(small_config(idx_src, tmp_path / "run", data__holdout=0.25, data__limit_train=48, train__epochs=1))
    assert s["val_split"] == "holdout" and s["steps"] == 48 // 16


# ------------------------------------------------------------------ CLI
def test_cli_train_flags_set_and_errors(tmp_path, idx_src, capsys):
    from tinyvision.cli import main

    out = tmp_path / "run"
    args = ["train", "--data", "fashion-mnist", "--source", str(idx_src), "--model", "quicknet", "--epochs", "1",
            "--batch-size", "16", "--lr", "0.02", "--optimizer", "adamw", "--seed", "3", "--quiet",
            "--set", "model.kwargs={widths: [8], stem: 8}", "--set", "output.tensorboard=false"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"run dir: {out}" in printed and "test top-1" in printed
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["optim"]["name"] == "adamw" and saved["optim"]["lr"] == 0.02 and saved["train"]["seed"] == 3
    # the run dir is taken: refused, with the way out named
    assert main([*args, "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    # --resume of a finished run: nothing left to do, same summary
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert main([*args, "--out", str(tmp_path / "x"), "--set", "optim.momentun=0.5"]) == 2
    assert "optim.momentum" in capsys.readouterr().err
    assert main(["train", "--config", "no-such-recipe"]) == 2
    assert "ready-made" in capsys.readouterr().err


def test_aux_heads_weighted_and_mixing_targets():
    from tinyvision.engine.loop import train_loss

    torch.manual_seed(0)
    main_, aux1, aux2 = torch.randn(3, 4, 5).unbind(0)
    y = torch.tensor([0, 1, 2, 3])
    total, logits = train_loss((main_, aux1, aux2), y, None, 0.0, 0.3)
    ce = torch.nn.functional.cross_entropy
    assert torch.allclose(total, ce(main_, y) + 0.3 * (ce(aux1, y) + ce(aux2, y))) and logits is main_
    soft = torch.full((4, 5), 0.2)  # uniform soft targets: the loss is the mean cross-entropy to uniform
    total, _ = train_loss(main_, y, soft, 0.0, 0.3)
    assert torch.allclose(total, -(torch.log_softmax(main_, 1) * 0.2).sum(1).mean())


def test_fit_with_mixup_cutmix_smoothing_and_clipping(tmp_path, idx_src):
    s = fit(small_config(idx_src, tmp_path / "run", optim__mixup=0.2, optim__cutmix=1.0, optim__label_smoothing=0.1,
                         optim__grad_clip=1.0, schedule__name="onecycle"))
    lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert s["epochs"] == 2 and all(math.isfinite(l["train_loss"]) for l in lines)


def test_precision_names_round_trip():
    from tinyvision.device import precision_dtype, precision_name

    for dtype in (None, torch.bfloat16, torch.float16):
        assert precision_dtype(precision_name(dtype)) is dtype
    assert precision_name(torch.bfloat16) == "bfloat16"  # the name summaries and run info carry


def test_cpu_bf16_probe_measures_without_touching_the_random_stream():
    from tinyvision.device import cpu_bf16_speedup

    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    ratio = cpu_bf16_speedup.__wrapped__()  # uncached: it really times both
    assert torch.equal(torch.rand(4), expected)
    assert math.isfinite(ratio) and 0.01 < ratio < 100


def test_auto_precision_follows_the_probe_and_a_resumed_run_keeps_its_own(tmp_path, idx_src, monkeypatch):
    import tinyvision.device as device
    from tinyvision.engine import FitHooks, Interrupted

    cpu = torch.device("cpu")
    assert device.resolve_precision("bf16", cpu) is torch.bfloat16 and device.resolve_precision("fp32", cpu) is None
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        monkeypatch.setattr(device, "cpu_bf16_speedup", lambda: pytest.fail("probed a CPU without bf16"))
        assert device.resolve_precision("auto", cpu) is None
        pytest.skip("this CPU has no bf16: auto is fp32 without a probe")
    monkeypatch.setattr(device, "cpu_bf16_speedup", lambda: 2.0)
    assert device.resolve_precision("auto", cpu) is torch.bfloat16
    monkeypatch.setattr(device, "cpu_bf16_speedup", lambda: 1.05)  # under BF16_MIN_SPEEDUP: not worth rounding
    assert device.resolve_precision("auto", cpu) is None
    assert device.resolve_precision("auto", cpu, earlier="bfloat16") is torch.bfloat16
    # started where bf16 paid, stopped at step 3, resumed after the probe changed its mind: still bf16
    monkeypatch.setattr(device, "cpu_bf16_speedup", lambda: 2.0)
    steps = iter(range(100))
    with pytest.raises(Interrupted):
        fit(small_config(idx_src, tmp_path / "run"), hooks=FitHooks(should_stop=lambda: next(steps) >= 3))
    monkeypatch.setattr(device, "cpu_bf16_speedup", lambda: 0.8)
    assert fit(small_config(idx_src, tmp_path / "run"), resume=True)["precision"] == "bfloat16"
    # a fresh run on the same host takes the host's recorded verdict, not a new reading
    record = tmp_path / "cache" / "host-probes.json"
    assert json.loads(record.read_text()) == {device.host_key(): 2.0}
    assert fit(small_config(idx_src, tmp_path / "same-host"))["precision"] == "bfloat16"
    record.unlink()  # measure again: now fp32, and recorded
    assert fit(small_config(idx_src, tmp_path / "fresh"))["precision"] == "fp32"
    assert json.loads(record.read_text()) == {device.host_key(): 0.8}


def test_host_probe_record_is_measured_once_per_host_and_survives_a_bad_file(tmp_path, monkeypatch):
    import tinyvision.device as device

    readings = iter([1.5, 0.7, 0.9])
    monkeypatch.setattr(device, "cpu_bf16_speedup", lambda: next(readings))
    record = tmp_path / "cache" / "host-probes.json"
    assert device.host_bf16_speedup(record) == 1.5
    assert device.host_bf16_speedup(record) == 1.5  # kept: no second measurement
    monkeypatch.setattr(device, "host_key", lambda: "another cpu | 2 threads | torch x")
    assert device.host_bf16_speedup(record) == 0.7  # another host measures its own, beside the first
    assert len(json.loads(record.read_text())) == 2
    record.write_text("{half a file")
    assert device.host_bf16_speedup(record) == 0.9  # unreadable: measured again, and rewritten whole
    assert json.loads(record.read_text()) == {"another cpu | 2 threads | torch x": 0.9}
    assert not [f for f in record.parent.iterdir() if f.name != record.name]  # no temp file left


def test_progress_off_a_terminal_is_plain_lines(tmp_path, idx_src, capsys, monkeypatch):
    """CI, nohup, a log file: no bar's carriage returns; a line every PROGRESS_EVERY_S seconds."""
    import tinyvision.engine.runlog as runlog

    fit(small_config(idx_src, tmp_path / "a", output__quiet=False))
    err = capsys.readouterr().err
    assert "\r" not in err and "batch 6/6" not in err  # 2 epochs of 6 steps: seconds, under the 30 s period
    monkeypatch.setattr(runlog, "PROGRESS_EVERY_S", 0.0)
    fit(small_config(idx_src, tmp_path / "b", output__quiet=False))
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if l.startswith("epoch ") and ": batch " in l]
    assert "\r" not in err and len(lines) == 12 and lines[-1].startswith("epoch 2/2: batch 6/6")


def test_choices_checked_when_set_and_in_python(tmp_path, idx_src):
    with pytest.raises(TinyVisionError, match="optim.name 'adamm': choose sgd, adam.*did you mean adam"):
        load_config(None, ["optim.name=adamm"])
    with pytest.raises(TinyVisionError, match="data.name 'cifar11'.*did you mean cifar10"):
        load_config(None, ["data.name=cifar11"])
    cfg = small_config(idx_src, tmp_path / "run")
    cfg.schedule.name = "cosin"  # set from Python, past override: fit checks before any work
    with pytest.raises(TinyVisionError, match="schedule.name 'cosin'"):
        fit(cfg)
    assert not (tmp_path / "run").exists()


def test_data_normalize_choices(tmp_path, idx_src):
    from tinyvision.runs import read_record

    fit(small_config(idx_src, tmp_path / "a", train__epochs=1, data__normalize="imagenet"))
    r = read_record(tmp_path / "a")
    assert r.mean == [pytest.approx((0.485 + 0.456 + 0.406) / 3)] and r.std == [pytest.approx((0.229 + 0.224 + 0.225) / 3)]
    fit(small_config(idx_src, tmp_path / "b", train__epochs=1, data__normalize="0.5/0.25"))
    assert (read_record(tmp_path / "b").mean, read_record(tmp_path / "b").std) == ([0.5], [0.25])
    with pytest.raises(TinyVisionError, match="data.normalize 'half'"):
        fit(small_config(idx_src, tmp_path / "c", train__epochs=1, data__normalize="half"))


def test_retarget_keeps_the_lr_continuous_and_ends_the_schedule_at_the_new_last_step():
    sched, opt = _schedule("linear", epochs=10, spe=10)  # 100 steps, 1 -> 0
    for _ in range(40):
        sched.step()
    before = opt.param_groups[0]["lr"]
    sched.retarget(40, 160)  # the budget allows 120 more steps instead of 60
    assert opt.param_groups[0]["lr"] == pytest.approx(before)
    lrs = []
    for _ in range(120):
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[-1] == pytest.approx(0.0, abs=1e-9) and lrs[59] == pytest.approx(before / 2)
    state = sched.state_dict()
    again, opt2 = _schedule("linear", epochs=10, spe=10)
    again.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
