"""Bad or unusual input at the public boundary: a clear error naming the parameter, or a documented, tested behaviour.

One test per case of the outside probe (issue 12): training-mode models, unscaled images, bool/float counts and
targets, numpy batch sizes, single-logit and wrongly shaped model outputs, NaN inputs, huge n, schedule files,
results files, load_images limits.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import riemannkit as rk
from riemannstudy import provenance as PV
from riemannkit import integrate as I
from riemannkit import metrics as M
from riemannkit import validate as V
from riemannkit.schedule import estimate_gprime

from conftest import SHAPE, ConvNet, LinearModel

from conftest import BNDropNet


def _x(b: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, *SHAPE, generator=torch.Generator().manual_seed(seed))


def test_training_mode_model_is_evaluated_in_eval_mode_and_restored():
    model = BNDropNet().train()
    model.drop.eval()  # a mixed state must come back as it was
    stats = (model.bn.running_mean.clone(), model.bn.running_var.clone(), int(model.bn.num_batches_tracked))
    x = _x(4)
    a = rk.attribute(model, x, n=8, target=0, batch_size=32).attr
    b = rk.attribute(model, x, n=8, target=0, batch_size=5).attr
    c = rk.attribute(model, x, n=8, target=0, batch_size=32).attr
    # BatchNorm's running statistics are untouched, every flag restored
    assert torch.equal(model.bn.running_mean, stats[0]) and torch.equal(model.bn.running_var, stats[1])
    assert int(model.bn.num_batches_tracked) == stats[2]
    assert model.training and model.bn.training and model.conv.training and not model.drop.training
    # no batch statistics and no dropout: the same call twice is bit-identical (same shapes, same code path);
    # a different pass size changes only float rounding (float32 sums in another order: ~1e-6 relative)
    assert torch.equal(a, c)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    # and equal to the map of the model put in eval mode by the caller
    ref = rk.attribute(model.eval(), x, n=8, target=0, batch_size=32).attr
    assert torch.equal(a, ref)


def test_eval_mode_restores_flags_when_the_call_raises():
    model = BNDropNet().train()
    with pytest.raises(ValueError, match="target"):
        rk.attribute(model, _x(2), n=4, target=9)
    assert all(m.training for m in model.modules())


@pytest.mark.parametrize("call", [
    lambda m, x: rk.idgi_attribute(m, x, n=4, target=0),
    lambda m, x: estimate_gprime(m, x, k=4, target=0),
    lambda m, x: M.insertion_deletion(m, x, torch.rand_like(x), target=0, steps=3),
])
def test_other_entry_points_leave_a_training_model_unchanged(call):
    model = BNDropNet().train()
    mean = model.bn.running_mean.clone()
    call(model, _x(3))
    assert torch.equal(model.bn.running_mean, mean) and model.training


# ----------------------------------------------------------------------------------------- images
def test_uint8_images_are_refused_with_the_conversion():
    x = (_x() * 255).to(torch.uint8)
    with pytest.raises(ValueError, match=r"x has dtype torch.uint8.*x.float\(\) / 255"):
        rk.attribute(LinearModel(), x, n=4)
    with pytest.raises(ValueError, match="uint8"):
        M.insertion_deletion(LinearModel(), x, torch.rand(3, *SHAPE), steps=3)


@pytest.mark.parametrize("scale, hint", [
    (lambda x: x * 255, r"0\.\.255 pixel values: pass x / 255"),
    (lambda x: x * 2 - 1, r"\[-1, 1\]: pass \(x \+ 1\) / 2"),
    (lambda x: (x - 0.45) / 0.22, "mean/std-normalised"),
])
def test_unscaled_float_images_are_refused_with_the_fix(scale, hint):
    with pytest.raises(ValueError, match=hint):
        rk.attribute(LinearModel(), scale(_x()), n=4)


def test_images_of_the_wrong_rank_or_type():
    with pytest.raises(ValueError, match=r"x must be a \(B, C, H, W\) batch"):
        rk.attribute(LinearModel(), _x()[0], n=4)
    with pytest.raises(ValueError, match="x must be a torch.Tensor"):
        rk.attribute(LinearModel(), _x().tolist(), n=4)


def test_nan_in_images_or_baseline_is_named_as_such():
    x = _x()
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="x holds NaN or Inf"):
        rk.attribute(LinearModel(), x, n=4)
    base = torch.zeros(SHAPE)
    base[0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="baseline holds NaN or Inf"):
        rk.attribute(LinearModel(), _x(), n=4, baseline=base)


def test_numpy_images_in_range_are_accepted():
    x = _x()
    a = rk.attribute(LinearModel(), x.numpy(), n=4, target=0).attr
    assert torch.equal(a, rk.attribute(LinearModel(), x, n=4, target=0).attr)


# ----------------------------------------------------------------------------------------- counts
@pytest.mark.parametrize("n", [True, False, 2.0, 1.5, "8", 0, -3])
def test_bad_n_is_refused(n):
    with pytest.raises(ValueError, match="n must be an integer"):
        rk.attribute(LinearModel(), _x(), n=n)


def test_n_none_is_the_default_n():
    assert torch.equal(rk.attribute(LinearModel(), _x(), n=None, target=0).attr, rk.attribute(LinearModel(), _x(), n=16, target=0).attr)


def test_numpy_and_torch_integer_n_are_accepted():
    ref = rk.attribute(LinearModel(), _x(), n=6, target=0).attr
    for n in (np.int64(6), np.int32(6), torch.tensor(6)):
        assert torch.equal(rk.attribute(LinearModel(), _x(), n=n, target=0).attr, ref)


@pytest.mark.parametrize("rule, n, memory", [("left", 10**7, "GiB per node array"), ("gausslegendre", 10**5, "74.5 GiB")])
def test_huge_n_is_refused_before_any_work_with_its_cost(rule, n, memory):
    with pytest.raises(ValueError, match=rf"n={n} exceeds the largest accepted value .*{memory}"):
        rk.attribute(LinearModel(), _x(), rule=rule, n=n)


def test_numpy_batch_size_works_like_an_int():
    model, x = ConvNet(), _x(5)
    a = rk.attribute(model, x, n=6, target=1, batch_size=np.int64(3))
    b = rk.attribute(model, x, n=6, target=1, batch_size=3)
    assert torch.equal(a.attr, b.attr)
    r = rk.idgi_attribute(model, x, n=6, target=1, batch_size=np.int64(3))
    assert r.attr.shape == x.shape


@pytest.mark.parametrize("bs", [True, 0, -1, 2.5, "8", "Auto"])
def test_bad_batch_size_is_refused(bs):
    with pytest.raises(ValueError, match="batch_size must be a positive integer .* or 'auto'"):
        rk.attribute(LinearModel(), _x(), n=4, batch_size=bs)


# ----------------------------------------------------------------------------------------- targets
@pytest.mark.parametrize("target, match", [
    (1.7, "target must be integer class indices"),
    (torch.tensor([0.0, 1.0, 1.0]), "target must be integer class indices"),
    (True, "target must be integer class indices"),
    (7, r"target must be class indices in \[0, 2\] \(the model has 3 classes\), got 7"),
    (-1, r"target must be class indices in \[0, 2\]"),
    ([0, 1], "target has 2 entries for 3 images"),
])
def test_bad_target_is_refused_naming_target(target, match):
    with pytest.raises(ValueError, match=match):
        rk.attribute(ConvNet(), _x(), n=4, target=target)


def test_numpy_integer_targets_are_accepted():
    ref = rk.attribute(ConvNet(), _x(), n=4, target=torch.tensor([0, 2, 1])).attr
    assert torch.equal(rk.attribute(ConvNet(), _x(), n=4, target=np.array([0, 2, 1])).attr, ref)


# ----------------------------------------------------------------------------------------- model outputs
class Out(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.kind, self.lin = kind, nn.Linear(3 * 8 * 8, 5)

    def forward(self, x):
        z = self.lin(x.flatten(1))
        return {"1d": z[:, 0], "3d": z[:, None, :], "tuple": (z, z), "dict": {"logits": z}, "one": z[:, :1]}[self.kind]


@pytest.mark.parametrize("kind, match", [
    ("1d", r"logits of shape \(N, classes\), got shape \(\d+,\)"),
    ("3d", r"logits of shape \(N, classes\), got shape \(\d+, 1, 5\)"),
    ("tuple", "got a tuple; wrap it"),
    ("dict", "got a dict; wrap it"),
    ("one", "single logit per image.*output='logit'"),
])
def test_model_outputs_of_the_wrong_form_are_named(kind, match):
    with pytest.raises(ValueError, match=match):
        rk.attribute(Out(kind), _x(), n=4)
    with pytest.raises(ValueError, match=match):
        rk.attribute(Out(kind), _x(), n=4, target=0)


def test_single_logit_model_works_with_output_logit():
    model = Out("one")
    r = rk.attribute(model, _x(), n=4, target=0, output="logit")
    w = model.lin.weight[0].detach().view(SHAPE)
    torch.testing.assert_close(r.attr, _x() * w, rtol=1e-5, atol=1e-6)  # linear logit: IG = x ⊙ w exactly


# ----------------------------------------------------------------------------------------- files
def test_corrupted_schedule_files_name_the_file(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json.*not valid JSON"):
        rk.load_schedule(bad)
    bad.write_text(json.dumps({"model": "m", "path": "ig", "k": 4, "m": 1, "n": 2, "alphas": [0.5, 0.2]}))
    with pytest.raises(ValueError, match="broken.json"):
        rk.load_schedule(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="broken.json.*list"):
        rk.load_schedule(bad)


def test_save_schedule_never_replaces_a_file_unasked(tmp_path):
    f = tmp_path / "s.json"
    kw = dict(model="m", path="ig", k=4, m=1, grid=np.linspace(0, 1, 5), gprime=np.ones(5))
    rk.save_schedule(f, [0.0, 0.5], **kw)
    with pytest.raises(FileExistsError, match="s.json.*overwrite=True"):
        rk.save_schedule(f, [0.0, 0.25], **kw)
    rk.save_schedule(f, [0.0, 0.25], overwrite=True, **kw)
    assert rk.load_schedule(f)["alphas"].tolist() == [0.0, 0.25]


def test_save_json_never_replaces_a_file_unasked(tmp_path):
    f = tmp_path / "r.json"
    PV.save_json(f, {"a": 1})
    with pytest.raises(FileExistsError, match="overwrite=True"):
        PV.save_json(f, {"a": 2})
    PV.save_json(f, {"a": 2}, overwrite=True)
    assert json.loads(f.read_text()) == {"a": 2}


def test_results_path_is_the_repository_results_folder_from_any_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert PV.results_path("x.json") == PV.REPO_ROOT / "results" / "x.json"
    assert PV.results_path("../results/x.json") == PV.REPO_ROOT / "results" / "x.json"  # the old notebook spelling
    assert PV.results_path("schedules/a.json") == PV.REPO_ROOT / "results" / "schedules" / "a.json"
    for outside in ("../x.json", "/tmp/x.json", "", "results"):
        with pytest.raises(ValueError, match="results"):
            PV.results_path(outside)


@pytest.mark.parametrize("limit", [-1, 0, 1.5, True])
def test_load_images_limit_must_be_positive(limit):
    from riemannkit.data import load_images

    with pytest.raises(ValueError, match="limit must be an integer >= 1"):
        load_images("shipped", limit=limit)


# ----------------------------------------------------------------------------------------- the validators themselves
def test_check_count_and_target_directly():
    assert V.check_count(np.int16(4), "k") == 4 and isinstance(V.check_count(np.int16(4), "k"), int)
    with pytest.raises(ValueError, match="k must be an integer >= 2, got 1"):
        V.check_count(1, "k", minimum=2)
    t = V.check_target(np.int64(2), 4, 3)
    assert t.dtype == torch.long and t.tolist() == [2, 2, 2, 2]


# ----------------------------------------------------------------------------- issue 27: the probe's earlier cases
@pytest.mark.parametrize("target", ["3", "0,1", b"1"])
def test_a_target_given_as_text_is_refused_naming_the_accepted_values(target):
    with pytest.raises(ValueError, match=r"target=.* is text; accepted values: integer class indices"):
        rk.attribute(LinearModel(), _x(2), n=4, target=target)


@pytest.mark.parametrize("alphas, match", [("0,0.5", r"alphas='0,0.5' is text; accepted values: a 1-D sequence"),
                                            ([0, "a"], r"alphas=\[0, 'a'\] is not numbers")])
def test_alphas_given_as_text_are_refused_naming_the_accepted_values(alphas, match):
    with pytest.raises(ValueError, match=match):
        rk.attribute(LinearModel(), _x(2), alphas=alphas, rule="left")


@pytest.mark.parametrize("alphas, match", [([0.5, 0, 0.9], r"alphas\[0\] must be 0"), ([0.2, 0.5], r"alphas\[0\] must be 0"),
                                            ([0, 0.5, 0.4], "sorted and distinct"), ([0, 1.0], r"in \[0, 1\)")])
def test_bounds_refuse_schedules_that_are_no_partition_of_0_1(alphas, match):
    from riemannkit import schedule as S

    grid, gp = np.arange(16) / 16, np.ones(16)
    for bound in (S.paper_bound, S.sup_bound, S.faithful_bound):
        with pytest.raises(ValueError, match=match):
            bound(alphas, grid, gp)


@pytest.mark.parametrize("grid, match", [(np.array([0.3, 0.4]), "must cover"), (np.array([0.0, 0.1]), "must cover"),
                                          (np.array([0.0, 0.5, 1.5]), "must cover"), (np.array([0.5, 0.0]), "increasing")])
def test_bounds_refuse_a_grid_that_does_not_cover_0_1(grid, match):
    from riemannkit import schedule as S

    for bound in (S.paper_bound, S.sup_bound, S.faithful_bound):
        with pytest.raises(ValueError, match=match):
            bound([0, 0.5], grid, np.ones(grid.size))
    assert S.paper_bound([0, 0.5], np.arange(8) / 8, np.ones(8)) == pytest.approx(0.25)  # Algorithm 1's j/k


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_linear_schedule_refuses_a_count_below_one(n):
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        rk.linear_schedule(n)


def test_completeness_error_of_nan_is_an_error_naming_the_image():
    attr = torch.ones(3, 1, 2, 2)
    with pytest.raises(ValueError, match=r"undefined for image\(s\) \[1\]: Σ attr, f\(x\) or f\(x'\) is NaN or infinite"):
        M.completeness_error(attr, torch.tensor([1.0, float("nan"), 2.0]), torch.zeros(3))
    attr[2, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"image\(s\) \[2\]"):
        M.completeness_error(attr, torch.tensor([1.0, 3.0, 2.0]), torch.zeros(3))
