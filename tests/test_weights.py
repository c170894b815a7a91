"""Weight files in torchvision's, timm's and safetensors' layouts, made here with random weights:
every tensor lands where it belongs (the loaded model computes what the original does), and a
file that does not fit says what is missing or unexpected."""
import pytest
import torch
import torchvision

import fixtures
from tinyvision.engine import fit, load_config
from tinyvision.errors import TinyVisionError
from tinyvision.models import create_model
from tinyvision.models.pretrained import load_pretrained


def _same_outputs(a, b, size=224, atol=1e-4):
    torch.manual_seed(0)
    x = torch.randn(2, 3, size, size)
    a.eval(), b.eval()
    with torch.no_grad():
        ya, yb = a(x), b(x)
    assert ya.shape == yb.shape
    torch.testing.assert_close(ya, yb, atol=atol, rtol=1e-4)


def test_torchvision_vgg16_into_timms_and_ours(tmp_path):
    torch.manual_seed(1)
    ref = torchvision.models.vgg16(num_classes=1000)
    torch.save(ref.state_dict(), tmp_path / "vgg16.pth")
    timm_vgg = create_model("timm/vgg16", num_classes=1000)
    info = load_pretrained(timm_vgg, str(tmp_path / "vgg16.pth"), model_name="timm/vgg16")
    assert info["head"] == "loaded" and "torchvision-vgg -> timm" in info["source"] and "sha256" in info["source"]
    _same_outputs(ref, timm_vgg)
    ours = create_model("vgg16", num_classes=1000, stem="imagenet")  # the key indices that failed before
    load_pretrained(ours, str(tmp_path / "vgg16.pth"), model_name="vgg16")
    _same_outputs(ref, ours)


def test_torchvision_mobilenetv2_into_timm_and_safetensors(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(2)
    ref = torchvision.models.mobilenet_v2(num_classes=1000)
    for m in ref.modules():  # non-trivial BN statistics, so that they too must land in the right place
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 1.5)
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, tmp_path / "mnv2.safetensors")
    model = create_model("mobilenetv2_100", num_classes=1000)
    info = load_pretrained(model, str(tmp_path / "mnv2.safetensors"), model_name="mobilenetv2_100")
    assert "torchvision-mobilenetv2 -> timm" in info["source"]
    _same_outputs(ref, model, size=96)


def test_timm_layout_file_and_new_head(tmp_path):
    import timm

    torch.manual_seed(3)
    ref = timm.create_model("mobilenetv1_100", pretrained=False, num_classes=1000)
    torch.save({"state_dict": ref.state_dict()}, tmp_path / "mnv1.pth.tar")  # as timm's train.py writes it
    same = create_model("mobilenetv1_100", num_classes=1000)
    load_pretrained(same, str(tmp_path / "mnv1.pth.tar"), model_name="mobilenetv1_100")
    _same_outputs(ref, same, size=96)
    ten = create_model("mobilenetv1_100", num_classes=10)  # another class count: the classifier is new
    assert load_pretrained(ten, str(tmp_path / "mnv1.pth.tar"), ["a"] * 10, model_name="mobilenetv1_100")["head"] == "new"
    assert torch.equal(ten.conv_stem.weight, ref.conv_stem.weight)
    torchvision_r18 = torchvision.models.resnet18(num_classes=1000)  # torchvision and timm ResNets share key names
    torch.save(torchvision_r18.state_dict(), tmp_path / "r18.pth")
    timm_r18 = create_model("timm/resnet18", num_classes=1000)
    load_pretrained(timm_r18, str(tmp_path / "r18.pth"), model_name="timm/resnet18")
    _same_outputs(torchvision_r18, timm_r18, size=64)


def test_a_file_that_does_not_fit_lists_the_keys(tmp_path):
    state = torchvision.models.resnet18(num_classes=1000).state_dict()
    state.pop("layer4.1.conv2.weight")
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(TinyVisionError, match=r"broken.pth.*1 missing \(e.g. layer4.1.conv2.weight\).*1 unexpected"):
        load_pretrained(create_model("timm/resnet18", num_classes=1000), str(tmp_path / "broken.pth"))
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(TinyVisionError, match="junk.safetensors: not a readable safetensors file"):
        load_pretrained(create_model("timm/resnet18", num_classes=1000), str(tmp_path / "junk.safetensors"))


def test_freeze_first_and_dense_head_in_a_run(tmp_path):
    from tinyvision.evaluate import evaluate_run
    from tinyvision.runs import load_model, read_record

    src = fixtures.idx_dataset(tmp_path / "fm", n_train=96, n_test=40)
    cfg = load_config(None, {
        "data.name": "fashion-mnist", "data.source": str(src), "model.name": "quicknet",
        "model.kwargs": {"widths": [8, 16], "stem": 8}, "model.head": [12], "model.head_dropout": 0.2,
        "transfer.freeze_first": 2, "train.epochs": 1, "train.batch_size": 16, "optim.lr": 0.1,
        "output.dir": str(tmp_path / "run"), "output.quiet": True, "output.tensorboard": False})
    torch.manual_seed(0)
    init = create_model("quicknet", 10, 1, widths=[8, 16], stem=8).state_dict()
    s = fit(cfg)
    ck = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["model"]
    # the first two layers (the stem conv and its BN, statistics included) are as initialized
    for k in ("features.0.weight", "features.1.weight", "features.1.bias", "features.1.running_mean"):
        assert torch.equal(ck[k], init[k]), k
    assert not torch.equal(ck["features.3.weight"], init["features.3.weight"])  # the third trains
    assert ck["head.0.weight"].shape == (12, 16) and ck["head.3.weight"].shape == (10, 12)  # Linear-ReLU-Dropout-Linear
    assert read_record(tmp_path / "run").head == [12]
    lm = load_model(tmp_path / "run", "last")  # eval rebuilds the same head from the record
    assert type(lm.model.head).__name__ == "DenseHead"
    assert evaluate_run(tmp_path / "run", "val", checkpoint="last")["top1"] == s["final"]["top1"]


def test_imagenet_weights_under_a_dense_head(tmp_path):
    from tinyvision.models.heads import dense_head

    ref = torchvision.models.resnet18(num_classes=1000)
    torch.save(ref.state_dict(), tmp_path / "r18.pth")
    model = dense_head(create_model("timm/resnet18", num_classes=10), [32], 0.1)
    fresh = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("fc.")}
    info = load_pretrained(model, str(tmp_path / "r18.pth"), ["x"] * 10, model_name="timm/resnet18")
    assert info["head"] == "new" and torch.equal(model.conv1.weight, ref.conv1.weight)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in fresh.items())  # the dense head as initialized
