"""Lookahead on airbench's schedule: when it syncs, by how much, and that the end of training
hands the model the slow weights (also when a deadline cut the run short)."""
import pytest
import torch
from torch import nn

from tinyvision.engine.lookahead import Lookahead


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))


def _nudge(model, by):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(by)
        model[1].running_mean.add_(by)


def test_syncs_every_n_steps_by_the_cubic_schedule():
    m = _model()
    la = Lookahead(m, every=2, base=0.9)
    start = {k: v.clone() for k, v in m.state_dict().items()}
    _nudge(m, 1.0)
    assert not la.update(m, step=1, total=10)  # not due: the trained weights are left alone
    assert torch.equal(m[0].weight, start["0.weight"] + 1.0)
    assert la.update(m, step=4, total=10)
    keep = 0.9 ** 2 * 0.4 ** 3
    assert la.decay(4, 10) == pytest.approx(keep)
    for k in ("0.weight", "0.bias", "1.bias", "1.running_mean"):
        expected = start[k] * keep + (start[k] + 1.0) * (1 - keep)
        assert torch.allclose(m.state_dict()[k], expected) and torch.allclose(la.slow[k], expected), k
    assert "1.num_batches_tracked" not in la.slow  # integer buffers are not averaged


def test_last_step_and_finish_give_the_model_the_slow_weights():
    m = _model()
    la = Lookahead(m, every=5)
    slow = {k: v.clone() for k, v in la.slow.items()}
    _nudge(m, 2.0)
    assert la.update(m, step=7, total=7)  # the last step syncs whatever its remainder
    for k, v in slow.items():
        assert torch.equal(m.state_dict()[k], v) and torch.equal(la.slow[k], v)
    _nudge(m, 3.0)
    la.finish(m)  # a run cut short between syncs ends on the slow weights too
    for k, v in slow.items():
        assert torch.equal(m.state_dict()[k], v)


def test_state_dict_round_trip():
    m = _model()
    la = Lookahead(m, every=3)
    _nudge(m, 1.0)
    la.update(m, step=3, total=4)
    other = Lookahead(_model(), every=1)
    other.load_state_dict(la.state_dict())
    assert other.every == 3 and all(torch.equal(other.slow[k], v) for k, v in la.slow.items())
    with pytest.raises(ValueError, match="at least 1"):
        Lookahead(m, every=0)
