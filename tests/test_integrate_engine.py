"""The batched engine: fixed full passes, chunk-size invariance, deferred finiteness check, and the speed
knobs (mixed precision, channels_last, torch.compile, automatic chunk size, out-of-memory advice)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import riemannkit as rk
from riemannkit import integrate as I
from riemannkit import idgi as D

from conftest import ConvNet, Counting


def _images(b: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- passes


@pytest.mark.parametrize("n_alphas,n_images,bs", [(5, 3, 4), (16, 5, 7), (3, 8, 64), (7, 1, 1), (4, 6, 6)])
def test_passes_are_full_but_the_last_and_cover_every_point_once(n_alphas, n_images, bs):
    chunks = I.pass_bounds(n_alphas * n_images, 0, bs)
    sizes = [e - s for s, e in chunks]
    assert all(sz == bs for sz in sizes[:-1]) and 1 <= sizes[-1] <= bs
    assert chunks[0][0] == 0 and chunks[-1][1] == n_alphas * n_images
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:]))


@pytest.mark.parametrize("start,length", [(0, 12), (2, 1), (2, 3), (3, 9), (1, 17), (4, 4), (5, 8)])
def test_add_flat_equals_index_add(start, length):
    b, n_alphas = 4, 8
    g = torch.Generator().manual_seed(start * 31 + length)
    w = torch.rand(n_alphas, generator=g, dtype=torch.float64)
    vals = torch.randn(length, 2, 3, generator=g, dtype=torch.float64)
    acc = torch.randn(b, 2, 3, generator=g, dtype=torch.float64)
    p = torch.arange(start, start + length)
    expected = acc.clone().index_add_(0, p % b, w[p // b].view(-1, 1, 1) * vals)
    I.add_flat(acc, w, start, vals)
    torch.testing.assert_close(acc, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n_points,n_extra,bs,unit,sizes", [
    (80, 0, 7, 1, [7] * 11 + [3]),  # no end points: every pass full but the last
    (80, 5, 7, 1, [8] * 10 + [5]),  # 85 points in as many passes as 80 take (12 of 7 → 11 of ≤ 8.75)
    (256, 16, 256, 1, [272]),  # the GPU profile's case: f(x)'s 16 rows ride in the one pass
    (30, 2, 8, 1, [8, 8, 8, 8]),  # they fit in the last pass's free room
    (6, 1, 1, 1, [1] * 7),  # batch_size 1 cannot grow: the end point takes a pass of its own
    (60, 5, 10, 5, [10] * 6 + [5]),  # whole rows of 5 points, 2 per pass, full: the end row takes a pass
    (60, 10, 5, 5, [5] * 14),  # a row per pass: a quarter more than a row is not a row
])
def test_pass_bounds_take_the_end_points_without_a_pass_of_their_own(n_points, n_extra, bs, unit, sizes):
    bounds = I.pass_bounds(n_points, n_extra, bs, unit)
    assert [e - s for s, e in bounds] == sizes
    assert bounds[0][0] == 0 and bounds[-1][1] == n_points + n_extra
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert all((e - s) % unit == 0 for s, e in bounds)
    assert max(sizes) <= max(bs, I.END_SLACK * bs, unit)


def test_passes_are_full_across_rows_of_alphas():
    model = Counting(ConvNet())
    rk.attribute(model, _images(5), n=16, batch_size=7, target=1)
    # 80 points and f(x)'s 5 rows in 11 passes of 8 (rows of alphas would give 5-point passes); f(x') is f
    # at α = 0, from the first pass: no forward of its own
    assert model.calls == [8] * 10 + [5]


@pytest.mark.parametrize("rule,calls", [("left", [18, 18]), ("right", [18, 18]), ("trapezoid", [16, 16]), ("midpoint", [20, 20])])
def test_f_at_the_ends_comes_from_the_passes(rule, calls):
    model, x = Counting(ConvNet()), _images(4)
    r = rk.attribute(model, x, rule=rule, n=8, target=1, batch_size=16)
    assert model.calls == calls  # the ends the rule's nodes miss ride as extra rows: no forward of their own
    with torch.no_grad():  # a point inside a batched pass may differ from a 4-image forward by float rounding
        torch.testing.assert_close(r.f_input, I.target_output(model, x, r.target), rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(r.f_baseline, I.target_output(model, torch.zeros_like(x), r.target), rtol=1e-5, atol=1e-7)


def test_mixed_precision_computes_f_at_the_ends_in_float32():
    model, x = Counting(ConvNet()), _images(4)
    r = rk.attribute(model, x, n=8, target=1, batch_size=32, amp_dtype="bf16")
    assert model.calls == [32, 8]  # the bf16 pass, then one float32 forward of x and x' together
    with torch.no_grad():
        torch.testing.assert_close(r.f_baseline, I.target_output(model, torch.zeros_like(x), r.target), rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(r.f_input, I.target_output(model, x, r.target), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("path,kw", [
    ("ig", {"rule": "left"}), ("ig", {"rule": "gausslegendre"}), ("ig", {"rule": "trapezoid"}),
    ("ig", {"alphas": [0, 0.1, 0.35, 0.5, 0.9], "rule": "midpoint"}), ("blurig", {"max_sigma": 3.0}),
])
def test_chunk_size_does_not_change_attributions(path, kw):
    model, x = ConvNet(), _images(5)
    ref = rk.attribute(model, x, path=path, n=9, batch_size=1000, **kw)
    for bs in (1, 2, 7, 13, 44, "auto"):
        r = rk.attribute(model, x, path=path, n=9, batch_size=bs, **kw)
        torch.testing.assert_close(r.attr, ref.attr, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(r.f_baseline, ref.f_baseline)


def test_chunk_size_does_not_change_idgi():
    model, x = ConvNet(), _images(5)
    ref_plain, ref_idgi = D.path_and_idgi(model, x, "ig", n=12, batch_size=1000)
    for bs in (1, 4, 7, "auto"):
        plain, idgi = D.path_and_idgi(model, x, "ig", n=12, batch_size=bs)
        torch.testing.assert_close(plain.attr, ref_plain.attr, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(idgi.attr, ref_idgi.attr, rtol=1e-5, atol=1e-7)


class _NaNLater(nn.Module):
    """Finite at points whose mean is below 0.5, NaN above: the NaN shows only in a later pass."""

    def __init__(self):
        super().__init__()
        self.inner = ConvNet()

    def forward(self, x):
        out = self.inner(x)
        bad = x.flatten(1).mean(1, keepdim=True) > 0.45
        return torch.where(bad, out * torch.tensor(float("nan")), out)


@pytest.mark.parametrize("fn", ["attribute", "idgi"])
def test_non_finite_gradient_in_a_later_pass_is_still_caught(fn):
    x = _images(2)
    with pytest.raises(FloatingPointError, match="not finite"):
        if fn == "attribute":
            rk.attribute(_NaNLater(), x, n=16, batch_size=4, target=0)
        else:
            D.idgi_attribute(_NaNLater(), x, n=16, batch_size=4, target=0)


# ---------------------------------------------------------------- knobs


def test_bf16_autocast_is_close_to_fp32_and_keeps_f_in_float32():
    model, x = ConvNet(), _images(4)
    fp32 = rk.attribute(model, x, n=16, target=0)
    bf16 = rk.attribute(model, x, n=16, target=0, amp_dtype="bf16")
    assert bf16.attr.dtype == torch.float32
    # f(x), f(x') in full precision: float32 forwards of x in both runs (in a pass, or of x and x' together)
    torch.testing.assert_close(bf16.f_input, fp32.f_input, rtol=1e-5, atol=1e-7)
    rel = (bf16.attr - fp32.attr).norm() / fp32.attr.norm()
    assert 0 < rel < 3e-2, rel  # bf16 has an 8-bit mantissa: visibly different, still close
    e32 = rk.completeness_error(fp32.attr, fp32.f_input, fp32.f_baseline)
    e16 = rk.completeness_error(bf16.attr, bf16.f_input, bf16.f_baseline)
    assert torch.isfinite(e16).all() and (e16 - e32).abs().max() < 0.05


def test_amp_in_idgi_engine():
    model, x = ConvNet(), _images(3)
    a = D.idgi_attribute(model, x, n=8, target=0)
    b = D.idgi_attribute(model, x, n=8, target=0, amp_dtype=torch.bfloat16)
    assert (b.attr - a.attr).norm() / a.attr.norm() < 5e-2


def test_channels_last_equals_contiguous():
    model, x = ConvNet(), _images(4)
    ref = rk.attribute(model, x, path="blurig", n=8, target=1)
    r = rk.attribute(model, x, path="blurig", n=8, target=1, channels_last=True)
    assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(r.attr, ref.attr, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("bs", [64, 7])  # one pass; several passes with a padded last one
def test_compile_equals_eager_and_is_cached(bs):
    torch._dynamo.reset()
    model, x = ConvNet(), _images(3)
    ref = rk.attribute(model, x, n=8, target=2, batch_size=bs)
    r = rk.attribute(model, x, n=8, target=2, batch_size=bs, compile="aot_eager")
    torch.testing.assert_close(r.attr, ref.attr, rtol=1e-5, atol=1e-7)
    assert I.engine_model(model, compile="aot_eager") is I.engine_model(model, compile="aot_eager")


def test_padded_last_pass_sends_full_passes_only():
    model, x = Counting(ConvNet()), _images(3)
    rk.attribute(model, x, n=8, target=2, batch_size=7, compile="eager")
    assert model.calls == [7] * 4  # 24 points and f(x)'s 3 rows: three full passes, a padded fourth


def test_bad_knobs_are_rejected_with_the_accepted_values(linear_model, images):
    with pytest.raises(ValueError, match="amp_dtype='int8'.*'bf16'"):
        rk.attribute(linear_model, images, amp_dtype="int8")
    with pytest.raises(ValueError, match="compile must be.*inductor"):
        rk.attribute(linear_model, images, compile="fastest")
    with pytest.raises(ValueError, match="channels_last must be True or False"):
        rk.attribute(linear_model, images, channels_last="yes")
    with pytest.raises(ValueError, match="batch_size.*'auto'"):
        rk.attribute(linear_model, images, batch_size="max")
    with pytest.raises(ValueError, match="batch_size.*'auto'"):
        D.idgi_attribute(linear_model, images, batch_size=2.5)


def test_auto_batch_size_on_cpu_and_fit_arithmetic():
    model, x = ConvNet(), _images(2)
    t = torch.zeros(2, dtype=torch.long)
    assert I.auto_batch_size(model, x, t, total=10) == 10
    assert I.auto_batch_size(model, x, t, total=10_000) == I.AUTO_CPU_BATCH
    assert I.fit_batch_size(free_bytes=10e9, bytes_per_point=50e6, cap=1024) == 120  # 0.6 × 10 GB / 50 MB
    assert I.fit_batch_size(free_bytes=1e6, bytes_per_point=50e6, cap=1024) == 1
    assert I.fit_batch_size(free_bytes=1e12, bytes_per_point=1e6, cap=256) == 256


class _OOMAbove(nn.Module):
    def __init__(self, limit: int):
        super().__init__()
        self.inner, self.limit = ConvNet(), limit

    def forward(self, x):
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(x)


def test_out_of_memory_names_batch_size_and_a_smaller_value():
    x = _images(4)
    with pytest.raises(torch.OutOfMemoryError, match=r"36 points.*batch_size=18.*'auto'"):
        rk.attribute(_OOMAbove(8), x, n=8, target=0, batch_size=32)  # 32 points and f(x)'s 4 rows in one pass
    r = rk.attribute(_OOMAbove(8), x, n=8, target=0, batch_size=6)  # passes of at most 6 × 1.25 points
    assert torch.isfinite(r.attr).all()


# ---------------------------------------------------------------- the knobs as one value

def test_engine_value_equals_the_keywords_in_every_method():
    model, x = ConvNet(), _images(4)
    eng = rk.Engine(batch_size=5, channels_last=True)
    a = rk.attribute(model, x, path="blurig", n=7, engine=eng)
    b = rk.attribute(ConvNet(), x, path="blurig", n=7, batch_size=5, channels_last=True)
    torch.testing.assert_close(a.attr, b.attr, rtol=0, atol=0)  # same call, same shapes: bit-identical
    i1 = rk.idgi_attribute(model, x, n=7, engine=rk.Engine(batch_size=3))
    i2 = rk.idgi_attribute(model, x, n=7, batch_size=3)
    torch.testing.assert_close(i1.attr, i2.attr, rtol=0, atol=0)


def test_engine_and_keywords_together_or_a_bad_engine_are_refused():
    model, x = ConvNet(), _images(2)
    with pytest.raises(ValueError, match="either as engine"):
        rk.attribute(model, x, n=4, batch_size=8, engine=rk.Engine(batch_size=4))
    with pytest.raises(ValueError, match="engine must be"):
        rk.attribute(model, x, n=4, engine={"batch_size": 4})
    with pytest.raises(ValueError, match="amp_dtype"):
        rk.idgi_attribute(model, x, n=4, engine=rk.Engine(amp_dtype="fp8"))
    with pytest.raises(ValueError, match="batch_size"):
        D.path_and_idgi(model, x, n=4, engine=rk.Engine(batch_size=0))


def test_values_only_passes_give_the_same_f_as_gradient_passes():
    model, x = ConvNet(), _images(3)
    nodes = torch.linspace(0, 1, 7, dtype=torch.float64)
    target = torch.tensor([0, 1, 2])
    plan = I.make_plan(model, "blurig", engine=rk.Engine(batch_size=5), nodes=nodes, max_sigma=3.0).replace(target=target)
    with_g = torch.cat([p.f for p in I.passes(plan, x)])
    only_f = list(I.passes(plan, x, grad=False))
    assert all(p.g is None and p.integrand is None for p in only_f)
    torch.testing.assert_close(torch.cat([p.f for p in only_f]), with_g, rtol=1e-6, atol=1e-7)
