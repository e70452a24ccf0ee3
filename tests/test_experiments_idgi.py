"""The IDGI and stability chapters' experiment functions (riemannkit.experiments): one pass gives both maps."""
from __future__ import annotations

import pytest
import torch

from riemannkit import experiments as E
from riemannkit import integrate as I
from riemannkit import metrics as M
from riemannkit.idgi import idgi_attribute

CASES = [
    ("ig", {}, None),
    ("ig", {"baseline": None}, [0.0, 0.05, 0.1, 0.3, 0.6, 0.9]),
    ("blurig", {"max_sigma": 3.0}, None),
    ("blurig", {"max_sigma": 3.0}, [0.0, 0.2, 0.25, 0.7]),
    ("guidedig", {"fraction": 0.5, "max_dist": 1.0}, None),
    ("guidedig", {}, [0.0, 0.1, 0.4, 0.45, 0.8]),
]


def _close(a: I.Attribution, b: I.Attribution) -> None:
    assert torch.allclose(a.attr, b.attr, rtol=1e-4, atol=1e-6)
    assert torch.allclose(a.f_input, b.f_input, atol=1e-6)
    assert torch.allclose(a.f_baseline, b.f_baseline, atol=1e-6)
    assert torch.equal(a.target, b.target) and a.n_gradients == b.n_gradients


@pytest.mark.parametrize("path, kwargs, alphas", CASES)
def test_path_and_idgi_equal_the_two_separate_calls(conv_model, images, path, kwargs, alphas):
    plain, idgi = E.path_and_idgi(conv_model, images, path, n=8, alphas=alphas, batch_size=5, **kwargs)
    rule = {} if alphas is not None else {"rule": "left", "n": 8}
    _close(plain, I.attribute(conv_model, images, path, alphas=alphas, batch_size=5, **rule, **kwargs))
    _close(idgi, idgi_attribute(conv_model, images, path, n=8, alphas=alphas, batch_size=5, **kwargs))
    # IDGI is complete by construction; the 8-step left rule is not.
    err = M.completeness_error(idgi.attr, idgi.f_input, idgi.f_baseline)
    assert (err < 1e-5).all()
    assert plain.attr.shape == idgi.attr.shape == images.shape and idgi.attr.dtype == torch.float32


def test_one_pass_of_gradients(conv_model, images, counting):
    model = counting(conv_model)
    E.path_and_idgi(model, images, "ig", n=8, target=0, batch_size=4)
    # f(x) once (B = 2), then 8 alphas × 2 images in chunks of ≤ 4 points: the cost of one method.
    assert model.calls == [2, 4, 4, 4, 4]


def test_more_images_than_a_batch(conv_model, baseline):
    x = torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    base = torch.cat([baseline, baseline, baseline[:1]])
    big = E.path_and_idgi(conv_model, x, "ig", n=4, batch_size=2, baseline=base)
    one = E.path_and_idgi(conv_model, x, "ig", n=4, batch_size=64, baseline=base)
    for a, b in zip(big, one):
        _close(a, b)


def test_all_method_maps_and_completeness(conv_model, images):
    maps = E.all_method_maps(conv_model, images, ["ig", "guidedig"], n=4, path_kwargs={"guidedig": {"fraction": 0.5}})
    assert list(maps) == ["IG", "IG+IDGI", "GIG", "GIG+IDGI"] == E.method_labels(["ig", "guidedig"])
    err = E.completeness_by_method(maps)
    assert (err["IG+IDGI"] < 1e-5).all() and (err["GIG+IDGI"] < 1e-5).all()
    assert (err["IG"] > 1e-4).any()
    with pytest.raises(ValueError, match="path_kwargs has unknown path"):
        E.all_method_maps(conv_model, images, ["ig"], path_kwargs={"blur": {}})
    with pytest.raises(ValueError, match="paths must name at least one path"):
        E.all_method_maps(conv_model, images, [])
    with pytest.raises(ValueError, match="unknown path='straight'"):
        E.method_labels(["straight"])


def test_jpeg_stability_table_matches_the_metric(conv_model, images):
    table, maps = E.jpeg_stability_table(conv_model, images, ["ig"], n=4, path_kwargs={"ig": {}})
    assert list(table) == ["IG", "IG+IDGI"]
    xq = M._to_uint8(images).float() / 255
    target = I.predict(conv_model, xq)
    # The same numbers from jpeg_stability with the maps computed directly, for the clean image's class.
    for label, fn in (("IG", lambda img: I.attribute(conv_model, img, "ig", n=4, target=target).attr),
                      ("IG+IDGI", lambda img: idgi_attribute(conv_model, img, "ig", n=4, target=target).attr)):
        mse, nlog = M.jpeg_stability(fn, images)
        assert torch.allclose(table[label]["mse"], mse, rtol=1e-3)
        assert torch.isfinite(table[label]["neg_log_mse"]).all()
    assert maps["IG"].attr.shape == (4, 3, 8, 8)
    assert torch.equal(maps["IG"].target[:2], maps["IG"].target[2:])
    with pytest.raises(ValueError, match="quality must be an integer"):
        E.jpeg_stability_table(conv_model, images, ["ig"], quality=101)


def test_relative_l2_and_table():
    a = {"IG": torch.ones(2, 3), "GIG": torch.zeros(2, 3)}
    b = {"IG": torch.ones(2, 3), "GIG": torch.full((2, 3), 2.0)}
    d = E.relative_l2(a, b)
    assert torch.equal(d["IG"], torch.zeros(2, dtype=torch.float64))
    assert torch.allclose(d["GIG"], torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="a lacks the key"):
        E.relative_l2({"IG": a["IG"]}, b)
    with pytest.raises(ValueError, match="has shape"):
        E.relative_l2({"IG": torch.ones(3), "GIG": a["GIG"]}, b)
    md = E.mean_spread_table({"IG": torch.tensor([1.0, 3.0]), "IG+IDGI": torch.tensor([4.0])}, "−ln MSE")
    assert md.splitlines()[2] == "| IG | 2.00 ± 1.41 |"
    assert md.splitlines()[3] == "| IG+IDGI | **4.00 ± 0.00** |"
    with pytest.raises(ValueError, match="unknown best="):
        E.mean_spread_table({"IG": torch.ones(2)}, "x", best="median")
