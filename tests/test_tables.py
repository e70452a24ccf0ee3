"""riemannstudy.tables.table: the one Markdown table formatter (shape, alignment, escaping, refusals)."""
import pytest

from riemannstudy import tables as TB


def test_table_shape_and_default_alignment():
    md = TB.table(["method", "n = 16", "n = 32"], [["IG", 0.5, "0.25"], ["BlurIG", 1, 2]])
    assert md.splitlines() == ["| method | n = 16 | n = 32 |", "|---|---:|---:|", "| IG | 0.5 | 0.25 |", "| BlurIG | 1 | 2 |"]


def test_table_alignment_letters():
    assert TB.table(["a", "b", "c"], [], align="lcr").splitlines()[1] == "|---|:---:|---:|"


def test_a_pipe_is_escaped_once_and_line_breaks_become_spaces():
    md = TB.table(["mean \\|g′\\|", "|x|"], [["a|b", "c\\|d\ne"]])
    assert md.splitlines()[0] == "| mean \\|g′\\| | \\|x\\| |"
    assert md.splitlines()[2] == "| a\\|b | c\\|d e |"


def test_bad_input_is_refused_naming_the_parameter():
    with pytest.raises(ValueError, match=r"align='lx'.*l, r, c.*2 columns"):
        TB.table(["a", "b"], [], align="lx")
    with pytest.raises(ValueError, match=r"align='l'.*2 columns"):
        TB.table(["a", "b"], [], align="l")
    with pytest.raises(ValueError, match=r"rows\[1\] has 1 cells for 2 columns"):
        TB.table(["a", "b"], [[1, 2], [3]])
    with pytest.raises(ValueError, match="header must name at least one column"):
        TB.table([], [])


def test_the_layouts_go_through_the_formatter():
    import torch

    md = TB.per_image_markdown({"IG": torch.tensor([1.0, 3.0])}, ["a", "b"], fmt="{:.1f}")
    assert md.splitlines() == ["| method | a | b | mean |", "|---|---:|---:|---:|", "| IG | 1.0 | 3.0 | 2.0 |"]
    md = TB.markdown_table({"ig": {8: 0.2}, "ig+idgi": {8: 0.3}}, ["ig", "ig+idgi"], [8], bold="pair")
    assert md.splitlines()[3] == "| IG+IDGI | **0.300** |"


def test_every_metric_has_its_label():
    from riemannkit import evaluation as EV

    assert set(TB.METRIC_LABELS) == set(EV.METRICS)
