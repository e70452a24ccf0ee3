"""The one registry of metrics (riemannkit.scoring): a metric is one register_metric call, and everything that names
metrics (metric_table, the accepted values, the tables' labels, the claims' directions) reads it from there."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from riemannkit import evaluation as EV  # noqa: E402
from riemannkit import scoring as S  # noqa: E402
from riemannstudy import evidence as EVD  # noqa: E402
from riemannstudy import tables as TB  # noqa: E402

from conftest import ConvNet  # noqa: E402

BUILT_IN = ("insertion_prob", "insertion_ratio", "deletion", "sic_webp", "aic_webp", "sic_msssim", "aic_msssim", "completeness")


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(4))


@pytest.fixture
def toy_family():
    """A family 'map_mass' (Σ|A| per image, counted) with one metric 'map_l1', removed afterwards."""
    calls = []

    def compute(batch: S.Batch, wanted: tuple[str, ...]) -> list[torch.Tensor]:
        calls.append(wanted)
        return [s.abs().flatten(1).sum(1) for s in batch.sal]

    S.register_family("map_mass", compute)
    S.register_metric("map_l1", "map_mass", lambda r, i, batch: S.score_record(r[i].mean(), r[i], len(r[i])), "‖A‖₁", "lower")
    yield calls
    S.unregister_family("map_mass")


def test_the_built_in_metrics_their_order_labels_and_directions():
    assert tuple(S.METRICS) == BUILT_IN
    assert EV.METRICS is S.METRICS and EV.LOWER_IS_BETTER is S.LOWER_IS_BETTER and TB.METRIC_LABELS is S.METRIC_LABELS
    assert tuple(S.LOWER_IS_BETTER) == ("deletion", "completeness")
    assert S.METRIC_LABELS["sic_msssim"] == "SIC, MS-SSIM" and set(S.METRIC_LABELS) == set(BUILT_IN)
    assert [S.better(m) for m in ("insertion_ratio", "aic_webp", "deletion")] == ["higher", "higher", "lower"]
    # Table 5's stability quantities are not scores: their directions sit beside the registry's.
    assert [EVD.idgi_better(m) for m in ("mse", "neg_log_mse", "relative", "sic_webp", "completeness")] == [
        "lower", "higher", "lower", "higher", "lower"]


def test_a_registered_metric_is_scored_labelled_and_accepted_from_that_one_call(images, toy_family):
    model = ConvNet(seed=0).eval()
    maps = EV.method_maps(model, images, ["ig", "blurig"], n=4, path_kwargs={"blurig": {"max_sigma": 3.0}})
    assert "map_l1" in S.METRICS and "map_l1" in EV.METRICS and "map_l1" in S.LOWER_IS_BETTER
    assert TB.METRIC_LABELS["map_l1"] == "‖A‖₁" and S.better("map_l1") == "lower"
    tab = EV.metric_table(model, images, maps, ["map_l1", "completeness"], steps=4)
    for name, m in maps.items():
        expect = m.attr.abs().flatten(1).sum(1)
        assert tab[name]["map_l1"]["per_image"] == pytest.approx(expect.tolist(), rel=1e-6)
        assert tab[name]["map_l1"]["n_valid"] == 2
        assert list(tab[name]) == ["completeness", "map_l1"]  # registry order, not request order
    assert toy_family == [("map_l1",)]  # one call scores both methods (they fit one batch)
    # A bare tensor is enough for a family that does not need Attributions.
    bare = EV.metric_table(model, images, {"ig": maps["ig"].attr}, ["map_l1"], steps=4)
    assert bare["ig"]["map_l1"]["value"] == pytest.approx(tab["ig"]["map_l1"]["value"], rel=1e-6)
    S.unregister_metric("map_l1")
    assert "map_l1" not in EV.METRICS
    with pytest.raises(ValueError, match=r"unknown metrics \['map_l1'\]; accepted values: insertion_prob, .*completeness"):
        EV.metric_table(model, images, maps, ["map_l1"])


def test_a_family_is_computed_once_for_all_its_metrics(images, toy_family):
    S.register_metric("map_l1_again", "map_mass", lambda r, i, batch: S.score_record(r[i].sum(), r[i], len(r[i])), "Σ‖A‖₁", "lower")
    model = ConvNet(seed=0).eval()
    maps = EV.method_maps(model, images, ["ig"], n=4)
    tab = EV.metric_table(model, images, maps, ["map_l1_again", "map_l1"], steps=4)
    assert toy_family == [("map_l1", "map_l1_again")]
    assert tab["ig"]["map_l1_again"]["value"] == pytest.approx(2 * tab["ig"]["map_l1"]["value"], rel=1e-6)


def test_registration_errors_name_the_parameter_and_the_accepted_values(toy_family):
    read = lambda r, i, batch: {}  # noqa: E731
    with pytest.raises(ValueError, match="metric='deletion' is registered already"):
        S.register_metric("deletion", "deletion", read, "deletion", "lower")
    with pytest.raises(ValueError, match="unknown family='curves'; accepted values: insertion, deletion, pic, completeness, map_mass"):
        S.register_metric("x", "curves", read, "x", "lower")
    with pytest.raises(ValueError, match="better must be one of higher, lower, got 'smaller'"):
        S.register_metric("x", "map_mass", read, "x", "smaller")
    with pytest.raises(ValueError, match="read must be a callable"):
        S.register_metric("x", "map_mass", None, "x", "lower")
    with pytest.raises(ValueError, match="family='pic' is registered already"):
        S.register_family("pic", lambda b, w: None)
    with pytest.raises(ValueError, match="unknown metric='auc'; accepted values: insertion_prob"):
        S.better("auc")
    assert "x" not in S.METRICS
