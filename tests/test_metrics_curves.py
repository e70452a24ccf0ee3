"""Evaluation metrics (riemannkit.metrics): insertion / deletion, (MS-)SSIM, PIC (SIC / AIC), JPEG stability."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import interpolate
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from riemannkit import metrics as M  # noqa: E402

from conftest import Counting, RegionModel


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _sigmoid(z):
    return 1 / (1 + np.exp(-np.asarray(z, dtype=np.float64)))


# ------------------------------------------------------------------------------ insertion / deletion
H = W = 8
REGION = (torch.arange(H * W) < 16).view(H, W)  # the first 16 pixels in row-major order
A, B = 0.25, -2.0
PERFECT = (H * W - 1 - torch.arange(H * W, dtype=torch.float32)).view(1, H, W)  # R ranked first
REVERSED = torch.arange(H * W, dtype=torch.float32).view(1, H, W)  # R ranked last


def _region_setup():
    return RegionModel(REGION, A, B).eval(), torch.ones(1, 3, H, W), torch.zeros(1, 3, H, W)


def _expected(counts_in_r):
    p = _sigmoid(A * np.asarray(counts_in_r, dtype=np.float64) + B)
    return p, np.trapezoid(p, np.arange(len(p)) / (len(p) - 1))


@pytest.mark.parametrize("saliency, in_r", [(PERFECT, lambda m: min(m, 16)), (REVERSED, lambda m: max(0, m - 48))])
def test_insertion_known_curve(saliency, in_r):
    model, x, start = _region_setup()
    curve, auc = M.insertion_deletion(model, x, saliency, start, target=0, kind="insertion", steps=8)
    p, a = _expected([in_r(8 * k) for k in range(9)])
    assert curve.shape == (1, 9) and auc.shape == (1,)
    assert np.allclose(curve[0].numpy(), p, atol=1e-6)
    assert auc.item() == pytest.approx(a, abs=1e-6)


def test_deletion_known_curve_and_ordering():
    model, x, base = _region_setup()
    cp, ap = M.insertion_deletion(model, x, PERFECT, base, target=0, kind="deletion", steps=8)
    cr, ar = M.insertion_deletion(model, x, REVERSED, base, target=0, kind="deletion", steps=8)
    p, a = _expected([16 - min(8 * k, 16) for k in range(9)])
    assert np.allclose(cp[0].numpy(), p, atol=1e-6)
    assert ap.item() == pytest.approx(a, abs=1e-6)
    assert ap.item() < ar.item()  # removing the evidence first drops the probability sooner
    ci, ai = M.insertion_deletion(model, x, PERFECT, base, target=0, kind="insertion", steps=8)
    cj, aj = M.insertion_deletion(model, x, REVERSED, base, target=0, kind="insertion", steps=8)
    assert ai.item() > aj.item()


def test_ratio_curve_ends_at_one():
    model, x, start = _region_setup()
    c, a = M.insertion_deletion(model, x, PERFECT, start, target=0, steps=8, output="ratio")
    p, _ = _expected([min(8 * k, 16) for k in range(9)])
    assert c[0, -1].item() == 1.0
    assert np.allclose(c[0].numpy(), p / p[-1], atol=1e-6)
    d, _ = M.insertion_deletion(model, x, PERFECT, start, target=0, kind="deletion", steps=8, output="ratio")
    assert d[0, 0].item() == 1.0


def test_reduce_choice_changes_the_ranking():
    """A map that is negative on R: the signed sum ranks R last, |·| summed ranks it first."""
    model, x, start = _region_setup()
    sal = (-PERFECT).unsqueeze(1).expand(1, 3, H, W)
    _, a_abs = M.insertion_deletion(model, x, sal, start, target=0, steps=8, reduce="abs_sum")
    _, a_perfect = M.insertion_deletion(model, x, PERFECT, start, target=0, steps=8)
    _, a_sum = M.insertion_deletion(model, x, sal, start, target=0, steps=8, reduce="sum")
    _, a_rev = M.insertion_deletion(model, x, REVERSED, start, target=0, steps=8)
    # Same ranking, so the same curve images in the same passes (same call shape): equal to the last bit.
    assert a_abs.item() == pytest.approx(a_perfect.item(), abs=1e-12)
    assert a_sum.item() == pytest.approx(a_rev.item(), abs=1e-12)
    s = torch.randn(2, 3, 4, 4, generator=_gen(0))
    xx = torch.zeros(2, 3, 4, 4)
    assert torch.allclose(M.reduce_saliency(s, xx, "sum"), s.double().sum(1))
    assert torch.allclose(M.reduce_saliency(s, xx, "abs_sum"), s.double().abs().sum(1))


def test_insertion_defaults_batching_and_uneven_steps():
    model = Counting(RegionModel(REGION, A, B).eval())
    x = torch.rand(3, 3, H, W, generator=_gen(1))
    sal = torch.rand(3, H, W, generator=_gen(2))
    curve, _ = M.insertion_deletion(model, x, sal, steps=6, batch_size=8)  # default start: blurred x
    assert max(model.calls[1:]) <= 8 and sum(model.calls[1:]) == 3 * 7
    with torch.no_grad():
        p0 = model.inner(M.blur_image(x, M.BLUR_SIGMA)).softmax(-1)
        p1 = model.inner(x).softmax(-1)
    target = p1.argmax(-1)
    assert torch.allclose(curve[:, 0].float(), p0.gather(1, target.view(-1, 1)).squeeze(1), atol=1e-6)
    assert torch.allclose(curve[:, -1].float(), p1.gather(1, target.view(-1, 1)).squeeze(1), atol=1e-6)


def test_insertion_bad_inputs():
    model, x, start = _region_setup()
    with pytest.raises(ValueError, match="unknown kind='both'; accepted values: insertion, deletion"):
        M.insertion_deletion(model, x, PERFECT, start, kind="both")
    with pytest.raises(ValueError, match="unknown output='logit'; accepted values: prob, ratio"):
        M.insertion_deletion(model, x, PERFECT, start, output="logit")
    with pytest.raises(ValueError, match="unknown reduce='max'; accepted values: sum, abs_sum"):
        M.insertion_deletion(model, x, PERFECT, start, reduce="max")
    with pytest.raises(ValueError, match="saliency shape"):
        M.insertion_deletion(model, x, PERFECT[:, :4], start)
    with pytest.raises(ValueError, match="saliency shape"):
        M.insertion_deletion(model, x, torch.zeros(1, 2, H, W), start)
    with pytest.raises(ValueError, match="saliency shape"):
        M.insertion_deletion(model, x, torch.zeros(2, H, W), start)
    with pytest.raises(ValueError, match="saliency must be"):
        M.insertion_deletion(model, x, torch.zeros(H, W), start)
    with pytest.raises(ValueError, match="NaN or Inf"):
        M.insertion_deletion(model, x, torch.full((1, H, W), math.nan), start)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        M.insertion_deletion(model, x, PERFECT, start, steps=0)
    with pytest.raises(ValueError, match="baseline shape"):
        M.insertion_deletion(model, x, PERFECT, torch.zeros(1, 3, 4, 4))


def test_blur_image():
    x = torch.full((1, 3, 16, 16), 0.7)
    assert torch.allclose(M.blur_image(x, 5.0), x, atol=1e-6)  # 'normalized': no dark border
    dark = M.blur_image(x, 5.0, mode="constant")
    assert dark[0, 0, 0, 0] < 0.5 and dark[0, 0, 8, 8] > dark[0, 0, 0, 0]
    y = torch.rand(2, 3, 16, 16, generator=_gen(3), dtype=torch.float64)
    ref = gaussian_filter(y.numpy(), sigma=[0, 0, 1.5, 1.5], mode="constant")
    assert np.allclose(M.blur_image(y, 1.5, mode="constant").numpy(), ref, atol=1e-10)
    assert torch.equal(M.blur_image(y, 0), y)
    with pytest.raises(ValueError, match="sigma must be a finite number >= 0"):
        M.blur_image(y, -1.0)
    with pytest.raises(ValueError, match="unknown mode='reflect'; accepted values: normalized, constant"):
        M.blur_image(y, 1.0, mode="reflect")


# ---------------------------------------------------------------------------------------- (MS-)SSIM
def _pair(size, seed, noise=0.2, b=2):
    g = _gen(seed)
    x = torch.rand(b, 3, size, size, generator=g, dtype=torch.float64)
    y = (x + noise * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    return x, y


def _skimage_ssim(x, y):
    return np.array([
        structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=0)
        for a, b in zip(x.numpy(), y.numpy())
    ])


def test_ssim_matches_skimage():
    for noise in (0.05, 0.3):
        x, y = _pair(32, 4, noise)
        assert np.allclose(M.ssim(x, y).numpy(), _skimage_ssim(x, y), atol=1e-10)
    x, y = _pair(24, 5)
    y = torch.rand(y.shape, generator=_gen(6), dtype=torch.float64)  # unrelated images
    assert np.allclose(M.ssim(x, y).numpy(), _skimage_ssim(x, y), atol=1e-10)


def test_ms_ssim_identity_range_and_scales():
    x, y = _pair(161, 7, 0.1, b=1)
    assert torch.allclose(M.ms_ssim(x, x), torch.ones(1, dtype=torch.float64), atol=1e-12)
    v1, v2 = M.ms_ssim(x, y), M.ms_ssim(x, _pair(161, 7, 0.3, b=1)[1])
    assert ((v1 > 0) & (v1 < 1)).all() and (v2 < v1).all()
    # One scale is SSIM; all the weight on the 5th scale is SSIM of the 2×-pooled-four-times images.
    assert torch.allclose(M.ms_ssim(x, y, weights=(1.0,)), M.ssim(x, y), atol=1e-12)
    xp, yp = x, y
    for _ in range(4):
        pad = [d % 2 for d in xp.shape[2:]]
        xp, yp = (torch.nn.functional.avg_pool2d(t, 2, padding=pad) for t in (xp, yp))
    assert np.allclose(M.ms_ssim(x, y, weights=(0, 0, 0, 0, 1.0)).numpy(), _skimage_ssim(xp, yp), atol=1e-10)


def test_ms_ssim_errors():
    x, y = _pair(160, 8)
    with pytest.raises(ValueError, match="at least 161 px on the short side"):
        M.ms_ssim(x, y)
    with pytest.raises(ValueError, match="same shape"):
        M.ssim(x, y[:, :, :100])
    with pytest.raises(ValueError, match="win_size must be an odd positive integer"):
        M.ssim(x, y, win_size=10)


# ----------------------------------------------------------------------------------------------- PIC
def _interp1d_reference(info, y, keep_monotonous=True, num_points=1000):
    """The tail of PAIR-code/saliency compute_pic_metric (scipy interp1d), thresholds' points only."""
    pts, best = [], 0.0
    for xi, yi in zip(info, y):
        best = max(best, yi)
        pts.append((xi, best if keep_monotonous else yi))
    pts += [(0.0, 0.0), (1.0, 1.0)]
    fx, fy = zip(*pts)
    f = interpolate.interp1d(x=fx, y=fy)
    cx = np.linspace(0.0, 1.0, num_points, endpoint=False)
    cy = np.append(np.asarray([f(v) for v in cx]), 1.0)
    cx = np.append(cx, 1.0)
    return cy, np.trapezoid(cy, cx)


def _pic_case(size=16, seed=20):
    """x: R (a central 4×4 block) white, texture elsewhere; saliency ranks R first; black start.
    The model is correct (class 0) iff more than half of R (≥ 9 of 16 pixels) is revealed."""
    g = _gen(seed)
    x = torch.rand(1, 3, size, size, generator=g) * 0.6
    region = torch.zeros(size, size, dtype=torch.bool)
    region[6:10, 6:10] = True  # away from the corners, which the random-mask start always reveals
    x[:, :, region] = 1.0
    sal = torch.rand(1, size, size, generator=g)
    sal[0, region] += 2.0
    model = RegionModel(region, 20.0, -20.0 * 0.53, mean=True).eval()
    return model, x, sal, torch.zeros_like(x)


def _revealed(sal, thresholds):
    s = sal.double().flatten().numpy()
    return [int((s >= np.quantile(s, 1 - t)).sum()) for t in thresholds]


def test_pic_step_curve_on_a_hand_built_model():
    model, x, sal, start = _pic_case()
    res = M.pic_curves(model, x, sal, start=start)
    counts = _revealed(sal, M.PIC_THRESHOLDS)
    in_r = np.minimum(counts, 16)
    # AIC: correct iff ≥ 9 pixels of R are revealed; the start is wrong, the original right.
    aic_expected = np.concatenate([[0.0], (in_r >= 9).astype(float), [1.0]])
    assert res.aic.score[0].tolist() == aic_expected.tolist()
    assert 0 < (in_r >= 9).sum() < len(in_r)  # a real step inside the thresholds
    sic_expected = _sigmoid(20 * (np.concatenate([[0], in_r, [16]]) / 16 - 0.53))
    assert np.allclose(res.sic.score[0].numpy(), sic_expected, atol=1e-6)
    assert res.aic.valid.all() and res.sic.valid.all() and res.aic.reason == ("",)
    info = res.aic.info[0].numpy()
    # WebP sizes need not grow monotonically with the revealed pixels (they do not here), so the
    # x-axis is checked through PAIR's own pipeline below.
    assert info[0] == 0 and info[-1] == 1 and ((info >= 0) & (info <= 1)).all()
    cx, cy = res.aic.curve_x.numpy(), res.aic.curve_y[0].numpy()
    assert len(cx) == 1001 and cx[-1] == 1 and cy[-1] == 1 and set(np.unique(cy[cx <= info[1:-1].min()])) == {0.0}
    # The curve matches PAIR's interp1d pipeline on the same information values.
    for r in (res.aic, res.sic):
        s = r.score[0].numpy()
        y = np.clip((s[1:-1] - s[0]) / (s[-1] - s[0]), 0, 1)
        cy_ref, auc_ref = _interp1d_reference(r.info[0, 1:-1].numpy(), y)
        assert np.allclose(r.curve_y[0].numpy(), cy_ref, atol=1e-12)
        assert r.auc.item() == pytest.approx(auc_ref, abs=1e-12)


def test_pic_curve_known_numbers_and_monotone_option():
    """Hand-placed points: info (start, t1, t2, original) = (0, .3, .6, 1), probabilities (.1, .6, .3, .9)."""
    info = torch.tensor([[0.0, 0.3, 0.6, 1.0]], dtype=torch.float64)
    score = torch.tensor([[0.1, 0.6, 0.3, 0.9]], dtype=torch.float64)
    mono = M._pic_result("sic", score, info, [[]], True, 1000)
    raw = M._pic_result("sic", score, info, [[]], False, 1000)
    # y = (.625, .25) normalised; the running max keeps .625 at .6.
    assert mono.auc.item() == pytest.approx(0.5 * 0.3 * 0.625 + 0.3 * 0.625 + 0.5 * 0.4 * 1.625, abs=1e-12)
    assert raw.auc.item() == pytest.approx(0.5 * 0.3 * 0.625 + 0.15 * 0.875 + 0.2 * 1.25, abs=1e-12)
    step = M._pic_result("aic", torch.tensor([[0.0, 0.0, 1.0, 1.0]], dtype=torch.float64),
                         torch.tensor([[0.0, 0.2, 0.5, 1.0]], dtype=torch.float64), [[]], True, 1000)
    assert step.auc.item() == pytest.approx(0.5 * 0.3 + 0.5, abs=1e-12)


def test_interpolation_matches_numpy_with_repeated_x():
    g = np.random.default_rng(0)
    xs = np.round(g.random((5, 9)) * 4) / 4  # many repeated abscissae, including 0 and 1
    xs[:, 0], xs[:, -1] = 0.0, 1.0
    ys = g.random((5, 9))
    q = np.linspace(0, 1, 101)
    ours = M._interp_last(torch.from_numpy(xs), torch.from_numpy(ys), torch.from_numpy(q)).numpy()
    for i in range(5):
        f = interpolate.interp1d(xs[i], ys[i])  # sorts stably, then np.interp
        assert np.allclose(ours[i], f(q), atol=1e-12)


def test_pic_flags_excluded_images_instead_of_raising():
    model, x, sal, start = _pic_case()
    xs = torch.cat([x, x])
    sal2 = torch.cat([sal, sal])
    # Image 1's start is the image itself: same prediction and same information as the original.
    starts = torch.cat([start, x])
    res = M.pic_curves(model, xs, sal2, start=starts)
    for r in (res.sic, res.aic):
        assert r.valid.tolist() == [True, False]
        assert "not below the original" in r.reason[1] and "WebP size" in r.reason[1]
        assert math.isnan(r.auc[1].item()) and torch.isnan(r.curve_y[1]).all() and not math.isnan(r.auc[0].item())
    low = M.pic_curves(model, x, sal, start=start, min_pred_value=1.0)
    assert not low.sic.valid[0] and "min_pred_value" in low.sic.reason[0] and low.aic.valid[0]


def test_aggregate_pic():
    cx = torch.linspace(0, 1, 5, dtype=torch.float64)
    ys = torch.tensor([[0, .1, .2, .3, 1], [0, .5, .6, .7, 1], [0, .9, .9, .9, 1], [math.nan] * 5], dtype=torch.float64)
    valid = torch.tensor([True, True, True, False])
    for kind, method, expected in (("sic", None, np.median), ("aic", None, np.mean), ("sic", "mean", np.mean)):
        r = M.PICResult(kind, cx, ys, ys[:, 2], valid, ("", "", "", "x"), ys, ys)
        curve, auc = M.aggregate_pic(r, method)
        ref = expected(ys[:3].numpy(), axis=0)
        assert np.allclose(curve.numpy(), ref) and auc == pytest.approx(np.trapezoid(ref, cx.numpy()))
    r2 = M.PICResult("sic", cx, ys[:2], ys[:2, 0], torch.tensor([True, True]), ("", ""), ys, ys)
    assert np.allclose(M.aggregate_pic(r2)[0].numpy(), ys[:2].mean(0).numpy())  # median of 2 = mean
    with pytest.raises(ValueError, match="unknown method='max'; accepted values: median, mean"):
        M.aggregate_pic(r2, "max")
    with pytest.raises(ValueError, match="no valid image"):
        M.aggregate_pic(r2._replace(valid=torch.tensor([False, False])))


def test_pic_msssim_axis_and_blur_start():
    model, x, sal, _ = _pic_case(size=161)
    res = M.pic_curves(model, x, sal, information="msssim", start="blur")
    info = res.aic.info[0]
    assert info[-1].item() == pytest.approx(1.0, abs=1e-9) and 0 < info[0].item() < 1
    assert res.aic.valid.all() and res.sic.valid.all()
    s = res.aic.score[0].numpy()
    # With the start point (MS-SSIM of the blurred image, 0) among the points, as the IDGI study.
    pts_x = res.aic.info[0, :-1].numpy()
    y = np.maximum.accumulate(np.clip((s[:-1] - s[0]) / (s[-1] - s[0]), 0, 1))
    f = interpolate.interp1d(np.concatenate([pts_x, [0, 1]]), np.concatenate([y, [0, 1]]))
    cx = res.aic.curve_x.numpy()
    assert np.allclose(res.aic.curve_y[0, :-1].numpy(), f(cx[:-1]), atol=1e-12)
    with pytest.raises(ValueError, match="at least 161 px on the short side"):
        M.pic_curves(model, x[:, :, :100, :], sal[:, :100, :], information="msssim")


def test_random_mask_start_reproduces_a_plane():
    i, j = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    plane = ((2 * i + 3 * j).float() / 255).expand(2, 3, 32, 32).clone()
    start, mask = M.random_mask_start(plane, 0.05, seed=1)
    assert mask.shape == (2, 32, 32) and mask[:, [0, 0, -1, -1], [0, -1, 0, -1]].all()
    assert int(mask[0].sum()) >= int(32 * 32 * 0.05)
    assert torch.allclose(start, plane, atol=1e-6)  # linear interpolation of a plane is exact
    noise = torch.rand(1, 3, 32, 32, generator=_gen(2))
    s1, m1 = M.random_mask_start(noise, 0.01, seed=3)
    s2, m2 = M.random_mask_start(noise, 0.01, seed=3)
    assert torch.equal(s1, s2) and torch.equal(m1, m2)  # the same seeded call twice: bit-identical
    q = torch.round(noise * 255) / 255
    assert torch.allclose(s1[:, :, m1[0]], q[:, :, m1[0]], atol=1e-6)
    model, x, sal, _ = _pic_case()
    res = M.pic_curves(model, x, sal, start="random_mask", seed=0)
    assert res.sic.curve_y.shape == (1, 1001)


def _pair_create_blurred_image(full_img: np.ndarray, pixel_mask: np.ndarray) -> np.ndarray:
    """PAIR's create_blurred_image on a uint8 (H, W, C) image: griddata per channel, corners known."""
    pixel_mask = pixel_mask.copy()
    h, w = pixel_mask.shape
    pixel_mask[[0, 0, h - 1, h - 1], [0, w - 1, 0, w - 1]] = True
    mean_color = np.mean(full_img, axis=(0, 1))
    out = full_img * pixel_mask[..., None].astype(np.float32)
    pts, unknown = np.argwhere(pixel_mask > 0), np.argwhere(pixel_mask == 0)
    for ch in range(full_img.shape[2]):
        vals = full_img[:, :, ch][tuple(pts.T)]
        out[:, :, ch][tuple(unknown.T)] = interpolate.griddata(pts, vals, unknown, method="linear", fill_value=mean_color[ch])
    return np.round(out).astype(np.uint8)


def test_interpolated_bokeh_matches_pair():
    x = torch.rand(2, 3, 24, 20, generator=_gen(30))
    known = torch.rand(2, 24, 20, generator=_gen(31)) < 0.1
    ours = M._interpolate_images(torch.round(x * 255) / 255, known)
    with M.one_blas_thread():  # griddata's tiny LAPACK calls are slow with a multi-threaded BLAS
        u8 = np.round(x.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
        refs = [_pair_create_blurred_image(u8[i], known[i].numpy()) for i in range(2)]
    # Exact: both sides run scipy's Delaunay triangulation and barycentric weights on the same points
    # (one BLAS thread each), and the same float32 store before rounding to 8 bits.
    for i, ref in enumerate(refs):
        assert np.array_equal(np.round(ours[i].permute(1, 2, 0).numpy() * 255).astype(np.uint8), ref)
    model, xx, sal, _ = _pic_case()
    res = M.pic_curves(model, xx, sal, start="random_mask", bokeh="interpolate")
    assert res.aic.valid.all() and torch.isfinite(res.sic.auc).all()
    with pytest.raises(ValueError, match="bokeh='interpolate' .* needs start='random_mask'"):
        M.pic_curves(model, xx, sal, start="blur", bokeh="interpolate")
    with pytest.raises(ValueError, match="unknown bokeh='smooth'; accepted values: paste, interpolate"):
        M.pic_curves(model, xx, sal, bokeh="smooth")


def test_webp_bytes_grow_with_information():
    flat = torch.full((1, 3, 32, 32), 0.5)
    noise = torch.rand(1, 3, 32, 32, generator=_gen(4))
    sizes = M.webp_bytes(torch.cat([flat, noise]))
    assert sizes.shape == (2,) and sizes[0] < sizes[1]


def test_pic_bad_inputs():
    model, x, sal, start = _pic_case()
    with pytest.raises(ValueError, match="unknown information='png'; accepted values: webp, msssim"):
        M.pic_curves(model, x, sal, information="png")
    with pytest.raises(ValueError, match="unknown start='gray'; accepted values: blur, random_mask"):
        M.pic_curves(model, x, sal, start="gray")
    with pytest.raises(ValueError, match="thresholds must be"):
        M.pic_curves(model, x, sal, thresholds=[0.5, 0.1])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        M.pic_curves(model, x * 2, sal)
    with pytest.raises(ValueError, match="saliency shape"):
        M.pic_curves(model, x, sal[:, :8])


# ---------------------------------------------------------------------------------------- stability
def test_jpeg_stability_constant_and_finite():
    x = torch.rand(2, 3, 16, 16, generator=_gen(5))
    mse, nlog = M.jpeg_stability(lambda img: torch.ones(img.shape[0], 16, 16), x)
    # The map ignores the image: identical maps, so exactly zero.
    assert torch.equal(mse, torch.zeros(2, dtype=torch.float64)) and torch.isinf(nlog).all() and (nlog > 0).all()
    fn = lambda img: img - 0.5  # noqa: E731  a signed map that changes with the image
    mse, nlog = M.jpeg_stability(fn, x)
    assert torch.isfinite(nlog).all() and (mse > 0).all()
    q = torch.round(x * 255) / 255
    a = (q - 0.5).double().sum(1).flatten(1)
    b = (M.jpeg_round_trip(q, 75) - 0.5).double().sum(1).flatten(1)
    a, b = a / a.abs().sum(1, keepdim=True), b / b.abs().sum(1, keepdim=True)
    assert torch.allclose(mse, (a - b).pow(2).mean(1), rtol=1e-6)
    assert torch.allclose(nlog, -torch.log(mse))


def test_jpeg_round_trip_and_errors():
    x = torch.rand(2, 3, 16, 16, generator=_gen(6))
    y = M.jpeg_round_trip(x, 75)
    assert y.shape == x.shape and y.dtype == x.dtype and 0 < (y - x).abs().mean() < 0.2
    assert (M.jpeg_round_trip(x, 100) - x).abs().mean() < (y - x).abs().mean()
    with pytest.raises(ValueError, match=r"quality must be an integer in \[1, 100\]"):
        M.jpeg_stability(lambda img: img, x, quality=0)
    with pytest.raises(ValueError, match="all-zero map"):
        M.jpeg_stability(lambda img: torch.zeros_like(img), x)
    with pytest.raises(ValueError, match="saliency shape"):
        M.jpeg_stability(lambda img: torch.ones(2, 8, 8), x)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        M.jpeg_stability(lambda img: img, x + 1)


def test_pic_from_points_rebuilds_curves_image_by_image():
    """Curves stored one image at a time aggregate (SIC's median curve) exactly as the batch they came from."""
    model, x, sal, start = _pic_case()
    g = torch.Generator().manual_seed(3)
    sal3 = torch.cat([sal, sal + 0.3 * torch.rand(sal.shape, generator=g), torch.rand(sal.shape, generator=g)])
    xs, starts = x.repeat(3, 1, 1, 1), start.repeat(3, 1, 1, 1)
    starts[2] = x[0]  # image 2 is excluded (its start is the original)
    res = M.pic_curves(model, xs, sal3, start=starts)
    for r in (res.sic, res.aic):
        singles = [M.pic_from_points(r.kind, r.info[i : i + 1], r.score[i : i + 1], r.valid[i : i + 1], r.reason[i : i + 1])
                   for i in range(3)]
        again = M.pic_from_points(r.kind, torch.cat([s.info for s in singles]), torch.cat([s.score for s in singles]),
                                  [bool(s.valid[0]) for s in singles], [s.reason[0] for s in singles])
        assert again.valid.tolist() == r.valid.tolist() == [True, True, False]
        assert torch.equal(again.curve_y[:2], r.curve_y[:2]) and torch.isnan(again.curve_y[2]).all()
        assert M.aggregate_pic(again)[1] == M.aggregate_pic(r)[1]
    with pytest.raises(ValueError, match="kind"):
        M.pic_from_points("xic", res.sic.info, res.sic.score, res.sic.valid)
    with pytest.raises(ValueError, match="one valid flag per image"):
        M.pic_from_points("sic", res.sic.info, res.sic.score[:, :-1], res.sic.valid)


def test_ms_ssim_is_the_convolution_and_does_not_depend_on_the_batch():
    """The Gaussian filter runs as shifted weighted sums: the 1-channel conv2d of before, to float rounding, and each
    image's value the same alone or in a batch (elementwise arithmetic; float32 as PIC's MS-SSIM axis)."""
    x, y = _pair(161, 9, 0.2, b=3)
    win = torch.tensor(M._gauss_window(11, 1.5, torch.float64), dtype=torch.float64)
    z = torch.stack([x, y, x * x]).reshape(-1, 1, 161, 161)
    conv = torch.nn.functional.conv2d(torch.nn.functional.conv2d(z, win.view(1, 1, -1, 1)), win.view(1, 1, 1, -1))
    assert torch.allclose(M._filter_valid(z, win.tolist()), conv, rtol=0, atol=1e-13)
    xf, yf = x.float(), y.float()
    together = M.ms_ssim(xf, yf)
    alone = torch.cat([M.ms_ssim(xf[i : i + 1], yf[i : i + 1]) for i in range(3)])
    # One float32 rounding at most (a CPU may fuse the multiply-add in its vector loop and not in its tail).
    assert torch.allclose(together, alone, rtol=1e-6, atol=0)


def test_pic_images_are_the_images_pic_curves_scores_and_both_axes_share_them():
    """pic_images builds the bokeh images of pic_curves (a prefetch of their WebP sizes is collected, not encoded
    again); pic_curves_axes gives each axis's curves from one forward pass per image, equal to pic_curves'."""
    from riemannkit import compression as C

    model, x, sal, _ = _pic_case(size=161)
    x2, sal2 = torch.cat([x, x.flip(-1)]), torch.cat([sal, sal.flip(-1)])
    imgs = M.pic_images(x2, sal2, start="blur")
    assert imgs.shape == ((len(M.PIC_THRESHOLDS) + 2) * 2, 3, 161, 161)
    M.prefetch_webp_bytes(imgs)
    before = dict(C.COUNTS)
    counting = Counting(model)
    target = torch.zeros(2, dtype=torch.long)
    both = M.pic_curves_axes(counting, x2, sal2, target, start="blur", informations=("webp", "msssim"), batch_size=64)
    assert C.COUNTS["submitted"] == before["submitted"]  # every WebP size was prefetched
    assert sum(counting.calls) == imgs.shape[0]  # one forward pass per bokeh image for both axes
    for info in ("webp", "msssim"):
        one = M.pic_curves(model, x2, sal2, target, start="blur", information=info)
        for a, b in zip(both[info], one):
            for field in ("curve_y", "auc", "info", "score", "valid"):
                assert torch.allclose(getattr(a, field).double(), getattr(b, field).double(), atol=1e-12, equal_nan=True), (info, field)
            assert a.reason == b.reason
    # A tensor start equal to the blurred one gives the same images (metric_table passes it once per photo).
    assert torch.equal(M.pic_images(x2, sal2, start=M.pic_blur_start(x2)), imgs)
    with pytest.raises(ValueError, match="pic_images builds pasted bokeh images"):
        M.pic_images(x2, sal2, start="random_mask")
    with pytest.raises(ValueError, match="information must name at least one of webp, msssim"):
        M.pic_curves_axes(model, x2, sal2, informations=())
    with pytest.raises(ValueError, match="unknown information='png'"):
        M.pic_curves_axes(model, x2, sal2, informations=("png",))
