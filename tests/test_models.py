"""Every registered model, at every input size it allows, with 1 and 3 channels (as timm's tests)."""
import json

import pytest
import torch

from tinyvision.cli import main
from tinyvision.errors import TinyVisionError
from tinyvision.models import create_model, get_entry, list_models, register_model
from tinyvision.models.summary import count_params

# Models whose middle FC layers hold 100M+ parameters: one configuration each keeps CI fast.
HEAVY = {"seed000-clf2", "seed000-clf3", "seed000-clf4", "seed000-clf4_2"}


def configs():
    for name in list_models():
        e = get_entry(name)
        sizes = e.input_sizes or tuple(s for s in (28, 32, 64) if s >= e.min_size)
        chans = e.in_chans or (1, 3)
        if e.task == "segmentation":  # one size and RGB: each is several backbones' worth of compute
            sizes, chans = (32,), (3,)
        for size in sizes:
            for c in chans:
                if name in HEAVY and (c, size) != (3, 64):
                    continue
                marks = [pytest.mark.slow] if name in HEAVY or name.startswith(
                    ("wrn28", "resnet101", "vgg19", "fcn8s", "fcn16s", "fcn32s", "tv-")) else []
                yield pytest.param(name, size, c, id=f"{name}-{size}px-{c}ch", marks=marks)


@pytest.mark.parametrize("name,size,chans", list(configs()))
def test_forward_backward(name, size, chans):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, in_chans=chans)
    model.train()
    x = torch.randn(2, chans, size, size)
    out = model(x)
    logits = out[0] if isinstance(out, tuple) else out
    expected = (2, 7, size, size) if get_entry(name).task == "segmentation" else (2, 7)
    assert logits.shape == expected
    loss = sum(o.float().logsumexp(1).mean() for o in (out if isinstance(out, tuple) else (out,)))
    loss.backward()
    assert torch.isfinite(logits).all()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads), "a parameter got no gradient (unused layer?)"
    assert all(torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        assert model(x).shape == expected


def test_googlenet_aux_only_in_training():
    m = create_model("googlenet", num_classes=5, in_chans=3)
    m.train()
    out = m(torch.randn(2, 3, 32, 32))
    assert isinstance(out, tuple) and len(out) == 3 and all(o.shape == (2, 5) for o in out)
    m.eval()
    out = m(torch.randn(2, 3, 32, 32))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 5)


@pytest.mark.parametrize("name,size,expected", [
    ("seed004-alexnet32", 32, 22_369_544),
    ("seed004-net", 32, 5_911_272),
    ("seed002-net1", 64, 4_790_728),
])
def test_parameter_counts_match_reports(name, size, expected):
    m = create_model(name, num_classes=200, in_chans=3)
    assert count_params(m) == expected


def test_alexnet32_counts_as_keras_does():
    m = create_model("seed004-alexnet32", num_classes=200, in_chans=3)
    bn_stats = sum(b.numel() for n, b in m.named_buffers() if n.endswith(("running_mean", "running_var")))
    assert count_params(m) + bn_stats == 22_370_760


def test_vgg16_conv_part():
    assert count_params(create_model("vgg16", num_classes=200).features) == 14_714_688


def test_vgg16_starts_from_torchvision_init():
    """A plain VGG16 with PyTorch's default init ends its features near zero and stays at chance on
    MNIST; torchvision's init (kaiming fan-out convs, N(0, 0.01) linears) keeps the signal."""
    import torchvision

    torch.manual_seed(0)
    ours = create_model("vgg16", num_classes=10)
    ref = torchvision.models.vgg16(num_classes=10)
    ours_convs = [m for m in ours.features if isinstance(m, torch.nn.Conv2d)]
    ref_convs = [m for m in ref.features if isinstance(m, torch.nn.Conv2d)]
    for a, b in zip(ours_convs, ref_convs, strict=True):
        assert a.weight.std().item() == pytest.approx(b.weight.std().item(), rel=0.1)
        assert not a.bias.any()
    assert ours.classifier[-1].weight.std().item() == pytest.approx(0.01, rel=0.1)


def test_fixed_size_models_name_their_size():
    m = create_model("seed002-net1", num_classes=200)
    with pytest.raises(TinyVisionError, match="seed002-net1 takes 64x64 inputs.*got 32x32"):
        m(torch.randn(1, 3, 32, 32))


def test_registry_refuses_duplicates_and_suggests():
    with pytest.raises(TinyVisionError, match="already registered"):
        register_model("resnet18")(lambda **kw: None)
    with pytest.raises(TinyVisionError, match="unknown model 'resnet81'.*closest: resnet18"):
        create_model("resnet81")
    with pytest.raises(TinyVisionError, match="in_chans"):
        create_model("seed004-net", in_chans=1)


def test_bn_placement_variants_differ():
    before = [type(m).__name__ for m in create_model("vgg11_bn").features][:3]
    after = [type(m).__name__ for m in create_model("vgg11_bn_relu_first").features][:3]
    assert before == ["Conv2d", "BatchNorm2d", "ReLU"] and after == ["Conv2d", "ReLU", "BatchNorm2d"]


def test_cli_models_list_and_show(capsys):
    assert main(["models", "list", "--json"]) == 0
    names = [m["name"] for m in json.loads(capsys.readouterr().out)]
    assert names == list_models() and "seed000-clf4_2" in names
    assert main(["models", "show", "seed002-net1", "--input", "64", "--classes", "200", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "seed002-net1" and info["params"] == 4_790_728
    # conv1 alone: 64*64 outputs * 128 channels * 3*5*5 = 39,321,600 MACs
    assert info["layers"][0]["macs"] == 39_321_600 and info["macs"] > info["layers"][0]["macs"]


@pytest.mark.parametrize("name, chans", [("quicknet-cifar", 3), ("quicknet", 1)])  # CIFAR's stem, the demo's
def test_whitening_stem_whitens_the_patches_it_was_fitted_on(name, chans):
    """quicknet's whiten stem, set by init_from_data (which sums the patch covariance over parts
    of 256 images: 300 here), maps the data's 2x2 patches to unit, uncorrelated outputs."""
    g = torch.Generator().manual_seed(0)
    base = torch.randn(300, chans, 9, 9, generator=g)
    shifted = [(i + 1) % chans for i in range(chans)]  # correlated pixels, and channels where there are several
    x = base[:, :, 1:, 1:] + 0.8 * base[:, :, :-1, :-1] + 0.5 * base[:, shifted, 1:, 1:]
    x = x * torch.tensor([1.0, 2.0, 0.5][:chans]).view(1, chans, 1, 1)
    kwargs = {} if name == "quicknet-cifar" else {"whiten": True}  # quicknet-cifar has it built in
    model = create_model(name, num_classes=10, in_chans=chans, **kwargs)
    model.init_from_data(x)
    k = 4 * chans
    w = model.whiten.weight[:k]  # the filters; the other k are their negatives
    assert torch.equal(model.whiten.weight[k:], -w)
    out = torch.nn.functional.conv2d(x, w).permute(0, 2, 3, 1).reshape(-1, k).double()
    cov = out.T @ out / len(out)
    assert torch.allclose(cov, torch.eye(k, dtype=torch.float64), atol=0.02), cov.diagonal()
