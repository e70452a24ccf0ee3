"""Labelled maps of every path ± IDGI (riemannkit.evaluation, riemannkit.idgi): one pass gives both maps; JPEG and
cross-device stability tables; the saliency grid."""
from __future__ import annotations

import pytest
import torch

from riemannkit import evaluation as EV
from riemannkit import idgi as ID
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
    plain, idgi = ID.path_and_idgi(conv_model, images, path, n=8, alphas=alphas, batch_size=5, **kwargs)
    rule = {} if alphas is not None else {"rule": "left", "n": 8}
    _close(plain, I.attribute(conv_model, images, path, alphas=alphas, batch_size=5, **rule, **kwargs))
    _close(idgi, idgi_attribute(conv_model, images, path, n=8, alphas=alphas, batch_size=5, **kwargs))
    # IDGI is complete by construction; the 8-step left rule is not.
    err = M.completeness_error(idgi.attr, idgi.f_input, idgi.f_baseline)
    assert (err < 1e-5).all()
    assert plain.attr.shape == idgi.attr.shape == images.shape and idgi.attr.dtype == torch.float32


def test_one_pass_of_gradients(conv_model, images, counting):
    model = counting(conv_model)
    ID.path_and_idgi(model, images, "ig", n=8, target=0, batch_size=4)
    # 8 alphas × 2 images in passes of ≤ 4 points, then f(x) as one more row: the cost of one method.
    assert model.calls == [4, 4, 4, 4, 2]


def test_more_images_than_a_batch(conv_model, baseline):
    x = torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    base = torch.cat([baseline, baseline, baseline[:1]])
    big = ID.path_and_idgi(conv_model, x, "ig", n=4, batch_size=2, baseline=base)
    one = ID.path_and_idgi(conv_model, x, "ig", n=4, batch_size=64, baseline=base)
    for a, b in zip(big, one):
        _close(a, b)


def test_all_method_maps_and_completeness(conv_model, images):
    maps = EV.all_method_maps(conv_model, images, ["ig", "guidedig"], n=4, path_kwargs={"guidedig": {"fraction": 0.5}})
    assert list(maps) == ["IG", "IG+IDGI", "GIG", "GIG+IDGI"] == EV.method_labels(["ig", "guidedig"])
    err = M.completeness_by_method(maps)
    assert (err["IG+IDGI"] < 1e-5).all() and (err["GIG+IDGI"] < 1e-5).all()
    assert (err["IG"] > 1e-4).any()
    with pytest.raises(ValueError, match="path_kwargs has unknown path"):
        EV.all_method_maps(conv_model, images, ["ig"], path_kwargs={"blur": {}})
    with pytest.raises(ValueError, match="paths must be a non-empty list"):
        EV.all_method_maps(conv_model, images, [])
    with pytest.raises(ValueError, match="unknown path='straight'"):
        EV.method_labels(["straight"])


def test_jpeg_stability_table_matches_the_metric(conv_model, images):
    table, maps = EV.jpeg_stability_table(conv_model, images, ["ig"], n=4, path_kwargs={"ig": {}})
    assert list(table) == ["IG", "IG+IDGI"]
    assert all(((v["relative"] >= 0) & (v["relative"] <= 2)).all() for v in table.values())
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
        EV.jpeg_stability_table(conv_model, images, ["ig"], quality=101)


def test_cross_device_difference_on_one_device_is_zero(conv_model, images):
    d = EV.cross_device_difference(conv_model, images, ("cpu", "cpu"), ["ig", "guidedig"], n=4)
    assert list(d) == ["IG", "IG+IDGI", "GIG", "GIG+IDGI"]
    for v in d.values():
        assert v.shape == (2,) and (v < 1e-6).all()
    with pytest.raises(ValueError, match="devices must name two devices"):
        EV.cross_device_difference(conv_model, images, ("cpu",))


def test_saliency_grid(images):
    import matplotlib

    matplotlib.use("Agg")
    from riemannkit import plot

    fig = plot.saliency_grid(images, {"IG": torch.randn(2, 3, 8, 8), "IG+IDGI": torch.randn(2, 3, 8, 8)}, ["a", "b"])
    assert len(fig.axes) == 6
    with pytest.raises(ValueError, match=r"maps\['IG'\] holds 1 maps for 2 images"):
        plot.saliency_grid(images, {"IG": torch.randn(1, 3, 8, 8)})


def test_saliency_grid_grey_images_and_bad_shape():
    import matplotlib

    matplotlib.use("Agg")
    from riemannkit import plot

    grey = torch.rand(2, 1, 28, 28)
    fig = plot.saliency_grid(grey, {"IG": torch.randn(2, 1, 28, 28)})
    shown = fig.axes[0].get_images()[0].get_array()
    assert shown.shape == (28, 28)  # drawn as a grey image, not as a 1-channel colour image
    with pytest.raises(ValueError, match=r"x must be a \(3, H, W\) or \(1, H, W\) image"):
        plot.saliency_grid(torch.rand(2, 2, 8, 8), {"IG": torch.randn(2, 2, 8, 8)})

