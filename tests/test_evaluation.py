"""Evaluation of saliency methods (riemannkit.evaluation): shared passes, metric tables, step sweeps."""
from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import riemannkit as rk  # noqa: E402
from riemannstudy import tables as TB  # noqa: E402
from riemannkit import evaluation as EV  # noqa: E402
from riemannkit import idgi as ID  # noqa: E402
from riemannkit import metrics as M  # noqa: E402
from riemannkit.idgi import idgi_attribute  # noqa: E402

from conftest import ConvNet, Counting, RegionModel

SHAPE = (3, 8, 8)
PATH_KW = {"ig": {}, "blurig": {"max_sigma": 3.0}, "guidedig": {"fraction": 0.5, "max_dist": 1.0}}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(2, *SHAPE, generator=_gen(10))


# ------------------------------------------------------------------------------ method names
def test_parse_method_and_errors():
    assert EV.parse_method("ig") == ("ig", False)
    assert EV.parse_method("BlurIG+IDGI") == ("blurig", True)
    assert EV.parse_method("guidedig + idgi") == ("guidedig", True)
    with pytest.raises(ValueError, match=r"unknown method='xrai'; accepted values: ig, ig\+idgi"):
        EV.parse_method("xrai")
    with pytest.raises(ValueError, match="unknown method"):
        EV.parse_method("ig+samp")


# ------------------------------------------------------------------------------ shared passes
@pytest.mark.parametrize("path", ["ig", "blurig", "guidedig"])
@pytest.mark.parametrize("alphas", [None, [0.0, 0.1, 0.35, 0.5, 0.9]])
def test_path_and_idgi_equals_the_separate_methods(images, path, alphas):
    model = ConvNet(seed=0).eval()
    target = torch.tensor([0, 2])
    plain, idgi = ID.path_and_idgi(model, images, path, n=7, alphas=alphas, target=target, batch_size=5, **PATH_KW[path])
    ref = rk.attribute(model, images, path, n=7, alphas=alphas, target=target, batch_size=5, **PATH_KW[path])
    ref_idgi = idgi_attribute(model, images, path, n=7, alphas=alphas, target=target, batch_size=5, **PATH_KW[path])
    assert torch.allclose(plain.attr, ref.attr, rtol=1e-5, atol=1e-7)
    assert torch.allclose(idgi.attr, ref_idgi.attr, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(plain.attr, idgi.attr, atol=1e-4)
    for a in (plain, idgi):
        assert torch.allclose(a.f_input, ref.f_input) and torch.allclose(a.f_baseline, ref.f_baseline, atol=1e-7)
        assert a.n_gradients == (7 if alphas is None else 5) and a.attr.dtype == torch.float32
    # IDGI is complete by construction.
    assert torch.allclose(idgi.attr.double().flatten(1).sum(1), (idgi.f_input - idgi.f_baseline).double(), atol=1e-6)


def test_one_gradient_pass_serves_both_maps(images):
    """n path points per image plus one forward pass at x, instead of 2n for IG and IDGI computed apart."""
    model = Counting(ConvNet(seed=0).eval())
    ID.path_and_idgi(model, images, "ig", n=6, target=[0, 1], batch_size=4)
    assert sum(model.calls) == 2 * 6 + 2
    assert max(model.calls) <= 4


def test_nested_linear_schedules_share_their_points(images):
    """i/2, i/4, i/8 are nested: the sweep costs 8 points per image, and each n matches its own run."""
    model = Counting(ConvNet(seed=2).eval())
    scheds = [rk.rule_nodes("left", n)[0] for n in (2, 4, 8)] + [torch.tensor([0.0, 0.3, 0.6], dtype=torch.float64)]
    res = ID.path_and_idgi_schedules(model, images, "ig", scheds, target=[1, 2], batch_size=6)
    # Union of the points: 0, 1/8, …, 7/8 plus 0.3 and 0.6 → 10 points for 2 images, + f(x).
    assert sum(model.calls) == 2 * 10 + 2
    for sched, (plain, idgi) in zip(scheds, res):
        ref = rk.attribute(model.inner, images, "ig", alphas=sched, target=[1, 2])
        ref_idgi = idgi_attribute(model.inner, images, "ig", alphas=sched, target=[1, 2])
        assert torch.allclose(plain.attr, ref.attr, rtol=1e-5, atol=1e-7)
        assert torch.allclose(idgi.attr, ref_idgi.attr, rtol=1e-5, atol=1e-7)
        assert plain.n_gradients == len(sched)


def test_more_images_than_one_batch(images):
    model = ConvNet(seed=3).eval()
    x = torch.cat([images, images.flip(-1), images.flip(-2)])
    plain, idgi = ID.path_and_idgi(model, x, "blurig", n=4, batch_size=4, max_sigma=2.0)
    ref = rk.attribute(model, x, "blurig", n=4, batch_size=64, max_sigma=2.0)
    assert plain.attr.shape == x.shape and torch.allclose(plain.attr, ref.attr, rtol=1e-5, atol=1e-7)
    assert torch.allclose(idgi.attr, idgi_attribute(model, x, "blurig", n=4, max_sigma=2.0).attr, rtol=1e-5, atol=1e-7)


def test_method_maps_order_schedules_and_errors(images):
    model = ConvNet(seed=0).eval()
    maps = EV.method_maps(model, images, ["guidedig+idgi", "ig", "ig+idgi"], n=4, batch_size=8,
                          path_kwargs=EV.STUDY_PATH_KWARGS)
    assert list(maps) == ["guidedig+idgi", "ig", "ig+idgi"]
    ref = rk.attribute(model, images, "guidedig", n=4, **EV.STUDY_PATH_KWARGS["guidedig"])
    assert torch.allclose(maps["guidedig+idgi"].f_baseline, ref.f_baseline)
    # A dict of schedules per path.
    sched = {"ig": [0.0, 0.5], "blurig": [0.0, 0.25, 0.5]}
    maps = EV.method_maps(model, images, ["ig", "blurig+idgi"], alphas=sched, path_kwargs={"blurig": {"max_sigma": 2.0}})
    assert maps["ig"].n_gradients == 2 and maps["blurig+idgi"].n_gradients == 3
    with pytest.raises(ValueError, match="no entry for path='blurig'"):
        EV.method_maps(model, images, ["blurig"], alphas={"ig": [0.0, 0.5]})
    with pytest.raises(ValueError, match="unknown method='lime'; accepted values"):
        EV.method_maps(model, images, ["ig", "lime"])
    with pytest.raises(ValueError, match="non-empty list"):
        EV.method_maps(model, images, "ig")
    with pytest.raises(ValueError, match="duplicates"):
        EV.method_maps(model, images, ["ig", "IG"])
    with pytest.raises(ValueError, match="unknown path"):
        EV.method_maps(model, images, ["ig"], path_kwargs={"blur": {}})
    with pytest.raises(ValueError, match="accepted values: prob, logit"):
        EV.method_maps(model, images, ["ig"], output="softmax")


# ------------------------------------------------------------------------------ metric tables
H = W = 164  # 5-scale MS-SSIM needs ≥ 161 px


@pytest.fixture
def region_setup():
    g = _gen(3)
    region = torch.zeros(H, W, dtype=torch.bool)
    region[40:80, 50:110] = True
    model = RegionModel(region, 12.0, -4.0, mean=True).eval()
    x = 0.3 * torch.rand(2, 3, H, W, generator=g)
    x[:, 0][:, region] = 0.8 + 0.2 * torch.rand(2, int(region.sum()), generator=g)
    perfect = region.float().expand(2, 1, H, W) + 0.01 * torch.rand(2, 1, H, W, generator=g)
    maps = {
        "ig": perfect.expand(2, 3, H, W).clone(),
        "ig+idgi": torch.rand(2, 3, H, W, generator=g),
        "blurig": -perfect.expand(2, 3, H, W).clone(),
    }
    return model, x, maps


def test_metric_table_matches_the_metrics_module(region_setup):
    model, x, maps = region_setup
    target = torch.zeros(2, dtype=torch.long)
    tab = EV.metric_table(model, x, maps, EV.METRICS[:-1], target, steps=8, insertion_start="black", min_pred_value=0.5,
                          batch_size=16)
    assert list(tab) == list(maps)
    black = torch.zeros_like(x)
    # The table scores the three methods' images together in passes of 16, the metrics module one method's
    # in passes of 64.  Float32 results of differently shaped passes (or thread counts, or CPU kernels) agree
    # to ~1e-7 relative, not to the last bit, so probabilities and their AUCs in [0, 1] are compared to 1e-6
    # and the ratios p / p(x) (up to 1 / p(x)) to 1e-5 relative.
    for name, sal in maps.items():
        row = tab[name]
        _, a = M.insertion_deletion(model, x, sal, black, target, "insertion", 8, "prob")
        _, r = M.insertion_deletion(model, x, sal, black, target, "insertion", 8, "ratio")
        _, d = M.insertion_deletion(model, x, sal, None, target, "deletion", 8, "prob")
        assert row["insertion_prob"]["value"] == pytest.approx(float(a.mean()), abs=1e-6)
        assert row["insertion_ratio"]["value"] == pytest.approx(float(r.mean()), rel=1e-5)
        assert row["insertion_ratio"]["per_image"] == pytest.approx(r.tolist(), rel=1e-5)
        assert row["deletion"]["value"] == pytest.approx(float(d.mean()), abs=1e-6)
        assert len(row["insertion_prob"]["curve"]) == 9
        for info in ("webp", "msssim"):
            pic = M.pic_curves(model, x, sal, target, start="blur", information=info, min_pred_value=0.5)
            for kind in ("sic", "aic"):
                res = getattr(pic, kind)
                cell = row[f"{kind}_{info}"]
                assert cell["n_valid"] == int(res.valid.sum())
                expected = M.aggregate_pic(res)[1] if cell["n_valid"] else math.nan
                # An AUC in [0, 1]; the MS-SSIM axis comes from float32 convolutions of 6 images here and 2
                # there (issue 12: SIC 0.44576768988 vs 0.44576768839 on an AMD EPYC; ATen's default and
                # SSE-only oneDNN/MKL kernels move it by 2e-8), the probabilities as above.
                assert cell["value"] == pytest.approx(expected, abs=1e-6, nan_ok=True)
    # The region model rewards the map that ranks the region first, and punishes its negative.
    for metric in ("insertion_prob", "insertion_ratio", "sic_webp", "sic_msssim"):
        assert tab["ig"][metric]["value"] > tab["blurig"][metric]["value"], metric
    assert tab["ig"]["deletion"]["value"] < tab["blurig"]["deletion"]["value"]
    for row in tab.values():
        for metric in ("insertion_prob", "deletion", "sic_webp", "aic_webp", "sic_msssim", "aic_msssim"):
            v = row[metric]["value"]
            assert math.isnan(v) or 0 <= v <= 1


def test_metric_table_reduce_start_and_no_valid_image(region_setup):
    model, x, maps = region_setup
    target = torch.zeros(2, dtype=torch.long)
    tab = EV.metric_table(model, x, {"ig": maps["blurig"]}, ["insertion_prob", "sic_webp"], target, steps=8,
                          reduce="abs_sum", insertion_start="blur", min_pred_value=1.0)
    # |−perfect| ranks like perfect; the insertion starts from the blurred image.
    _, a = M.insertion_deletion(model, x, maps["ig"], None, target, "insertion", 8, "prob")
    # Two routes to the same curve images, whose passes need not be shaped alike: equal to float32 noise.
    assert tab["ig"]["insertion_prob"]["value"] == pytest.approx(float(a.mean()), abs=1e-6)
    # No image reaches p ≥ 1: no valid SIC, reported as NaN instead of raising.
    assert tab["ig"]["sic_webp"]["n_valid"] == 0 and math.isnan(tab["ig"]["sic_webp"]["value"])
    assert set(tab["ig"]) == {"insertion_prob", "sic_webp"}


def test_both_pic_axes_share_one_forward_pass_per_bokeh_image(region_setup):
    model, x, maps = region_setup
    counting = Counting(model)
    target = torch.zeros(2, dtype=torch.long)
    EV.metric_table(counting, x, maps, ["sic_webp"], target, batch_size=8)
    one_axis = sum(counting.calls)
    counting.calls.clear()
    EV.metric_table(counting, x, maps, ["sic_webp", "aic_msssim"], target, batch_size=8)
    assert sum(counting.calls) == one_axis == 3 * 2 * (len(M.PIC_THRESHOLDS) + 2)


def test_metric_table_pairs_per_call_and_per_image_curves(region_setup):
    """Scoring one method per call or all methods in one call gives the same table (each image's numbers do not depend
    on the other pairs in its passes, to float32 rounding); per_image_curves adds each image's curve, whose mean is
    the table's curve.  (PIC's grouping is the same loop: tests/test_reference_idgi.py scores it, one photo against
    a group.)"""
    model, x, maps = region_setup
    target = torch.zeros(2, dtype=torch.long)
    kw = dict(metrics=["insertion_prob", "insertion_ratio", "deletion"], target=target, steps=8,
              insertion_start="black", min_pred_value=0.5)
    one = EV.metric_table(model, x, maps, max_pairs=1, batch_size=4, **kw)
    allp = EV.metric_table(model, x, maps, max_pairs=64, batch_size=64, per_image_curves=True, **kw)
    assert list(allp) == list(one)
    for name in maps:
        assert list(allp[name]) == list(one[name])
        for metric, rec in one[name].items():
            assert allp[name][metric]["per_image"] == pytest.approx(rec["per_image"], abs=1e-6, nan_ok=True), (name, metric)
            assert "per_image_curves" not in rec
        for metric in ("insertion_prob", "deletion"):
            curves = torch.tensor(allp[name][metric]["per_image_curves"], dtype=torch.float64)
            assert curves.shape == (2, 9)
            assert curves.mean(0).tolist() == pytest.approx(allp[name][metric]["curve"], abs=1e-12)
    with pytest.raises(ValueError, match="max_pairs must be an integer >= 1"):
        EV.metric_table(model, x, maps, max_pairs=0, **kw)


def test_metric_table_errors(region_setup, images):
    model, x, maps = region_setup
    with pytest.raises(ValueError, match="unknown metrics.*accepted values: insertion_prob"):
        EV.metric_table(model, x, maps, ["insertion", "deletion"])
    with pytest.raises(ValueError, match="unknown insertion_start='grey'; accepted values: black, blur"):
        EV.metric_table(model, x, maps, ["insertion_prob"], insertion_start="grey")
    with pytest.raises(ValueError, match="unknown reduce='max'"):
        EV.metric_table(model, x, maps, ["insertion_prob"], reduce="max")
    with pytest.raises(ValueError, match="'completeness' needs an Attribution"):
        EV.metric_table(model, x, maps, ["completeness"])
    with pytest.raises(ValueError, match="has 1 maps for 2 images"):
        EV.metric_table(model, x, {"ig": maps["ig"][:1]}, ["deletion"])
    with pytest.raises(ValueError, match="non-empty dict"):
        EV.metric_table(model, x, {}, ["deletion"])


def test_completeness_from_attributions(images):
    model = ConvNet(seed=0).eval()
    maps = EV.method_maps(model, images, ["ig", "ig+idgi"], n=4)
    tab = EV.metric_table(model, images, maps, ["completeness", "deletion"], steps=4)
    err = M.completeness_error(maps["ig"].attr, maps["ig"].f_input, maps["ig"].f_baseline)
    assert tab["ig"]["completeness"]["value"] == pytest.approx(float(err.mean()))
    assert tab["ig+idgi"]["completeness"]["value"] < 1e-5


# ------------------------------------------------------------------------------ sweeps and tables
def test_step_sweep_linear_and_schedules(images):
    model = ConvNet(seed=5).eval()
    methods = ["ig", "ig+idgi", "blurig"]
    kw = {"blurig": {"max_sigma": 2.0}}
    sweep = EV.step_sweep(model, images, methods, [2, 4], metrics=["insertion_prob", "completeness"], steps=4,
                          path_kwargs=kw)
    assert list(sweep) == [2, 4]
    for n in (2, 4):
        maps = EV.method_maps(model, images, methods, n=n, path_kwargs=kw)
        ref = EV.metric_table(model, images, maps, ["insertion_prob", "completeness"], steps=4)
        for m in methods:
            assert sweep[n][m]["insertion_prob"]["value"] == pytest.approx(ref[m]["insertion_prob"]["value"], abs=1e-6)
        assert sweep[n]["ig"]["completeness"]["value"] == pytest.approx(ref["ig"]["completeness"]["value"], rel=1e-4)
        assert "completeness" not in sweep[n]["ig+idgi"]  # complete by construction: not measured
    sched = {"ig": {2: [0.0, 0.7], 4: [0.0, 0.1, 0.2, 0.5]}, "blurig": {2: [0.0, 0.4], 4: [0.0, 0.3, 0.6, 0.9]}}
    opt = EV.step_sweep(model, images, methods, [2, 4], sched, metrics=["completeness"], path_kwargs=kw)
    direct = rk.attribute(model, images, "ig", alphas=sched["ig"][4])
    err = M.completeness_error(direct.attr, direct.f_input, direct.f_baseline)
    assert opt[4]["ig"]["completeness"]["value"] == pytest.approx(float(err.mean()), rel=1e-4)
    assert set(opt[4]["ig"]) == {"completeness"}
    with pytest.raises(ValueError, match="schedule for path='ig' and every n"):
        EV.step_sweep(model, images, methods, [2, 8], sched, metrics=["completeness"])
    with pytest.raises(ValueError, match="steps must be a non-empty list of positive integers"):
        EV.step_sweep(model, images, methods, [0, 4])
    with pytest.raises(ValueError, match="steps holds duplicates"):
        EV.sweep_maps(model, images, methods, [4, 4])


def test_sweep_values_difference_and_markdown():
    sweep = {
        8: {"ig": {"insertion_prob": {"value": 0.2}}, "ig+idgi": {"insertion_prob": {"value": 0.3}}},
        32: {"ig": {"insertion_prob": {"value": 0.25}}, "ig+idgi": {"insertion_prob": {"value": 0.45}}},
    }
    vals = TB.sweep_values(sweep, "insertion_prob")
    assert vals == {"ig": {8: 0.2, 32: 0.25}, "ig+idgi": {8: 0.3, 32: 0.45}}
    assert TB.step_difference(vals, 8, 32) == pytest.approx({"ig": 0.05, "ig+idgi": 0.15})
    with pytest.raises(ValueError, match="not in the sweep"):
        TB.sweep_values(sweep, "deletion")
    with pytest.raises(ValueError, match="no value at n=8 and n=128"):
        TB.step_difference(vals, 8, 128)
    table = {"ig": {"a": 0.2, "b": 0.5}, "ig+idgi": {"a": 0.3, "b": math.nan}}
    md = TB.markdown_table(table, ["ig", "ig+idgi"], ["a", "b"], column_names={"a": "Lite0"})
    lines = md.splitlines()
    assert lines[0] == "| method | Lite0 | b |"
    assert lines[2] == "| IG | 0.200 | 0.500 |" and lines[3] == "| IG+IDGI | **0.300** | n/a |"
    md = TB.markdown_table(table, ["ig", "ig+idgi"], ["a"], higher_is_better=False, bold="column")
    assert "| IG | **0.200** |" in md
    with pytest.raises(ValueError, match="unknown bold='row'"):
        TB.markdown_table(table, ["ig"], ["a"], bold="row")


def test_zero_gradient_warning_is_raised_once_per_map():
    class Flat(nn.Module):
        def forward(self, x):  # zero gradient until x·1 > half its final value, then linear
            s = x.flatten(1).sum(1)
            z = torch.relu(s - 0.5 * 192 * 0.5)
            return torch.stack([z, torch.zeros_like(z)], 1)

    x = torch.full((1, *SHAPE), 0.5)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        plain, idgi = ID.path_and_idgi(Flat(), x, "ig", n=3, target=0, output="logit")
    assert sum("zero-gradient steps" in str(w.message) for w in rec) == 1
    assert torch.isfinite(idgi.attr).all()
