import pytest
import torch

from tinyvision.data.augment import OPS, PRESETS, Augment, Crop, Flip, Rotate, SwitchOff, build_augment, parse_policy
from tinyvision.engine.mixing import mix_batch
from tinyvision.errors import TinyVisionError


def batch(n=16, c=3, s=16, seed=0):
    return torch.randint(0, 256, (n, c, s, s), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("channels", [1, 3])
def test_presets_shape_dtype_range_determinism(preset, channels):
    x = batch(c=channels)
    aug = build_augment(preset, (0.0,) * channels, (1.0,) * channels, image_size=16)
    y1, y2 = aug(x, gen(1)), aug(x, gen(1))
    assert y1.shape == x.shape and y1.dtype == torch.float32
    assert float(y1.min()) >= -1e-6 and float(y1.max()) <= 1 + 1e-6  # identity normalization keeps [0, 1]
    assert torch.equal(y1, y2)


@pytest.mark.parametrize("name", sorted(set(OPS) - {"resize"}))
def test_every_op_is_random_per_sample(name):
    # the same image 32 times: a per-sample random op makes the copies differ from each other
    x = batch(1, s=16).repeat(32, 1, 1, 1)
    op = parse_policy(name, 16)[0]
    y = op(x.float() / 255, gen(3))
    assert y.shape[0] == 32 and torch.isfinite(y).all()
    distinct = {tuple(v.flatten()[::7].tolist()) for v in y}
    assert len(distinct) > 1, f"{name} gave every sample the same result"


def test_flip_flips_about_half():
    x = batch(1).repeat(400, 1, 1, 1).float()
    y = Flip()(x, gen())
    flipped = (y == x.flip(3)).flatten(1).all(1)
    assert 150 < int(flipped.sum()) < 250


def test_crop_is_exact_integer_shift():
    x = batch(8, s=12).float()
    y = Crop(padding=3)(x, gen(2))
    for i in range(8):  # every output is a zero-padded shift of its own input
        xp = torch.nn.functional.pad(x[i], (3, 3, 3, 3))
        assert any(torch.equal(y[i], xp[:, dy : dy + 12, dx : dx + 12]) for dy in range(7) for dx in range(7))


def test_rotate_zero_degrees_is_identity():
    x = batch(4).float() / 255
    assert torch.allclose(Rotate(degrees=0)(x, gen()), x, atol=1e-5)


def test_switch_off_fraction():
    x = torch.ones(64, 3, 32, 32)
    y = SwitchOff(p=0.05)(x, gen())
    assert abs(float((y == 0).float().mean()) - 0.05) < 0.005


def test_normalize_uses_given_stats_and_eval_is_deterministic():
    x = batch()
    aug = Augment([], (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    y = aug(x)
    assert torch.allclose(y, (x.float() / 255 - 0.5) / 0.25, atol=1e-5)
    assert torch.equal(aug(x), y)


def test_rrc_output_size_and_resize():
    x = batch(s=32)
    assert build_augment("rrc:size=24", (0,) * 3, (1,) * 3)(x, gen()).shape == (16, 3, 24, 24)
    assert Augment([], (0,) * 3, (1,) * 3, size=48)(x).shape == (16, 3, 48, 48)


def test_policy_string_and_list_forms_agree():
    a = parse_policy("crop:padding=4,rotate:degrees=10,rrc:scale=0.5~1", 32)
    b = parse_policy([{"name": "crop", "padding": 4}, {"name": "rotate", "degrees": 10},
                      {"name": "rrc", "scale": (0.5, 1)}])
    assert a == b


def test_bad_policies():
    with pytest.raises(TinyVisionError, match="unknown augmentation 'flop'"):
        parse_policy("flop")
    with pytest.raises(TinyVisionError, match="'crop'.*unexpected keyword"):
        parse_policy("crop:pad=3")


def test_mixup_cutmix_soft_targets():
    x = torch.randn(8, 3, 16, 16)
    y = torch.arange(8) % 4
    for kw in ({"mixup_alpha": 0.4}, {"cutmix_alpha": 1.0}, {"mixup_alpha": 0.4, "cutmix_alpha": 1.0}):
        xm, t = mix_batch(x, y, 4, gen(), **kw)
        assert xm.shape == x.shape and t.shape == (8, 4)
        assert torch.allclose(t.sum(1), torch.ones(8))
    _, t = mix_batch(x, y, 4, gen(), smoothing=0.1)
    assert torch.allclose(t[0], torch.tensor([0.925, 0.025, 0.025, 0.025]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augment_on_cuda_matches_shape():
    x = batch().cuda()
    y = build_augment("strong", (0.5,) * 3, (0.2,) * 3, 16)(x, torch.Generator("cuda").manual_seed(0))
    assert y.is_cuda and y.shape == x.shape


def test_affine_grid_matches_torch():
    from tinyvision.data.augment import affine_grid

    for n, h, w in [(5, 16, 16), (3, 12, 20), (2, 7, 5)]:
        theta = torch.randn(n, 2, 3, generator=gen(n))
        ref = torch.nn.functional.affine_grid(theta, (n, 3, h, w), align_corners=False)
        assert torch.allclose(affine_grid(theta, n, h, w), ref, atol=2e-6)


@pytest.mark.parametrize("policy", ["benchmark", "crop:padding=2,flip", "rrc:size=12,flip", "none"])
def test_cpu_chunks_give_the_whole_batch_result(policy, monkeypatch):
    # geometric parameters are drawn for the whole batch, so chunking must not change a pixel
    import tinyvision.data.augment.pipeline as A

    x = batch(10, s=16, seed=4).permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # NHWC storage, as the loader
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    whole = build_augment(policy, mean, std, image_size=16)(x, gen(5))
    monkeypatch.setattr(A, "CPU_CHUNK_PIXELS", 3 * 16 * 16)  # chunks of 3, 3, 3, 1 images
    chunked = build_augment(policy, mean, std, image_size=16)(x, gen(5))
    assert torch.equal(chunked, whole)
    cl = build_augment(policy, mean, std, image_size=16, channels_last=True)(x, gen(5))
    assert cl.is_contiguous(memory_format=torch.channels_last) and torch.equal(cl, whole)


def test_chunked_pixel_ops_stay_random_per_sample_and_reproducible(monkeypatch):
    import tinyvision.data.augment.pipeline as A

    monkeypatch.setattr(A, "CPU_CHUNK_PIXELS", 4 * 16 * 16)
    x = batch(1, s=16).repeat(12, 1, 1, 1)
    aug = build_augment("brightness:strength=0.5,switch-off:p=0.2", (0,) * 3, (1,) * 3, image_size=16)
    y = aug(x, gen(6))
    assert torch.equal(y, aug(x, gen(6)))
    assert len({tuple(v.flatten()[::5].tolist()) for v in y}) == 12  # no two chunks repeat each other


def test_augment_never_writes_to_its_input():
    for x in (batch(), batch().float()):
        before = x.clone()
        build_augment("standard", (0.5,) * 3, (0.2,) * 3, 16)(x, gen())
        Augment([], (0.5,) * 3, (0.2,) * 3)(x)
        assert torch.equal(x, before)


def test_switch_off_per_epoch_is_one_mask_on_the_normalized_input():
    """Report 000: one (C, H, W) mask of 5% zeros per epoch, multiplied into the normalized input."""
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    aug = build_augment("seed000-switchoff", mean, std, image_size=16)
    x = torch.full((6, 3, 16, 16), 200, dtype=torch.uint8)  # normalized: never 0 by itself
    aug.set_epoch(0, 0)
    a, b = aug(x[:3], gen(1)), aug(x[3:], gen(2))  # two batches of one epoch
    off = a == 0
    assert torch.equal(off[0], off[1]) and torch.equal(off[0], (b == 0)[0])  # the same mask for every image
    assert abs(float(off[0].float().mean()) - 0.05) < 0.03
    assert torch.allclose(a[~off], torch.tensor([(200 / 255 - m) / s for m, s in zip(mean, std)]).view(3, 1, 1)
                          .expand(3, 16, 16)[~off[0]].repeat(3), atol=1e-5)
    aug.set_epoch(0, 1)
    assert not torch.equal(aug(x[:1], gen(1)) == 0, off[:1])  # a new mask next epoch
    aug.set_epoch(0, 0)
    assert torch.equal(aug(x[:1], gen(9)) == 0, off[:1])  # and the same one again for epoch 0


def test_alternating_flip_mirrors_each_image_the_other_way_every_epoch():
    x = batch(n=64)
    mirrored = x.flip(-1)
    aug = build_augment("flip:alternate=1", (0.0,) * 3, (1.0,) * 3, image_size=16)
    plain = build_augment("flip:p=0", (0.0,) * 3, (1.0,) * 3, image_size=16)
    rows = torch.arange(100, 164).numpy()

    def flipped(seed, epoch, g):
        aug.set_epoch(seed, epoch)
        aug.set_rows(rows)
        y = aug(x, g)
        is_mirror = torch.tensor([torch.equal(a, b) for a, b in zip(y, plain(mirrored))])
        assert bool((is_mirror | torch.tensor([torch.equal(a, b) for a, b in zip(y, plain(x))])).all())
        return is_mirror  # every image is itself or its mirror

    e0, e1, e2 = flipped(0, 0, gen(1)), flipped(0, 1, gen(2)), flipped(0, 2, gen(3))
    assert 20 < int(e0.sum()) < 44  # a coin per image in epoch 0
    assert torch.equal(e1, ~e0) and torch.equal(e2, e0)  # then the other way each epoch, whatever g draws
    assert not torch.equal(flipped(1, 0, gen(1)), e0)  # another seed, other coins
    # the rows are for one call: without them the flip is random, drawn from g
    aug.set_epoch(0, 0)
    a, b = aug(x, gen(5)), aug(x, gen(6))
    assert not torch.equal(a, b)
    with pytest.raises(TinyVisionError, match="alternate"):
        build_augment("flip:alternate=yes", (0.0,) * 3, (1.0,) * 3)
