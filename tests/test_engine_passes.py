"""The engine's cost per call, counted on the CPU: one forward+backward per pass and no forward of its own for
f(x) or f(x') (forward hooks and torch.profiler's convolution counts), and at most one host sync per call
(``aten::_local_scalar_dense``: ``.item()``, ``bool(tensor)``, ``float(tensor)``), with every check of the
values still made; ``batch_size='auto'`` through a fake memory query; the capture (CUDA-graph) code path."""
from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import riemannkit as rk
from riemannkit import integrate as I
from riemannkit import schedule as S

from conftest import ConvNet, Counting, LinearDecoder


def _images(b: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def _profiled(fn) -> dict[str, int]:
    """Operator counts of one call of ``fn`` (after a warm-up call)."""
    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {e.key: e.count for e in prof.key_averages()}


KNOTS = torch.randn(4, 5, 4, generator=torch.Generator().manual_seed(7))
# (name, call, gradient points per image, end rows per image the call adds to its passes)
CALLS = [
    ("ig left", lambda m, x, bs: rk.attribute(m, x, n=16, target=1, batch_size=bs), 16, 1),
    ("ig right", lambda m, x, bs: rk.attribute(m, x, rule="right", n=16, target=1, batch_size=bs), 16, 1),
    ("ig midpoint", lambda m, x, bs: rk.attribute(m, x, rule="midpoint", n=16, target=1, batch_size=bs), 16, 2),
    ("ig trapezoid", lambda m, x, bs: rk.attribute(m, x, rule="trapezoid", n=16, target=1, batch_size=bs), 16, 0),
    ("ig gausslegendre", lambda m, x, bs: rk.attribute(m, x, rule="gausslegendre", n=16, target=1, batch_size=bs), 16, 2),
    ("ig baseline", lambda m, x, bs: rk.attribute(m, x, n=16, target=1, batch_size=bs, baseline=torch.full_like(x, 0.25)), 16, 1),
    ("ig midpoint baseline", lambda m, x, bs: rk.attribute(m, x, rule="midpoint", n=16, target=1, batch_size=bs,
                                                           baseline=torch.full_like(x, 0.25)), 16, 2),
    ("blurig", lambda m, x, bs: rk.attribute(m, x, path="blurig", n=16, target=1, batch_size=bs, max_sigma=3.0), 16, 1),
    ("manifold", lambda m, x, bs: rk.attribute(m, x, path="manifold", n=16, target=1, batch_size=bs,
                                               decoder=LinearDecoder(shape=(3, 8, 8)), knots=KNOTS), 16, 1),
    ("schedule midpoint", lambda m, x, bs: rk.attribute(m, x, rule="midpoint", alphas=[0, 0.1, 0.3, 0.7], target=1, batch_size=bs), 4, 2),
]


@pytest.mark.parametrize("bs", [64, 16, 7])
@pytest.mark.parametrize("name,call,points,ends", CALLS, ids=[c[0] for c in CALLS])
def test_attribute_makes_one_forward_backward_per_pass_and_at_most_one_sync(name, call, points, ends, bs):
    model, x = Counting(ConvNet().eval()), _images()
    counts = _profiled(lambda: (model.calls.clear(), call(model, x, bs)))
    b = x.shape[0]
    passes = I.pass_bounds(points * b, ends * b, bs)
    # forward hooks: one forward per pass, holding the gradient points and f's end rows, nothing else
    assert model.calls == [e - s for s, e in passes]
    # the profiler: one convolution forward and one backward per pass (ConvNet has one convolution)
    assert counts.get("aten::convolution", 0) == len(passes)
    assert counts.get("aten::convolution_backward", 0) == len(passes)
    # as many passes as the gradient points alone take, unless f's end rows need more than a quarter more room
    assert len(passes) <= max(-(-points * b // bs), -(-(points + ends) * b // int(I.END_SLACK * bs)))
    assert counts.get("aten::_local_scalar_dense", 0) <= 1, counts.get("aten::_local_scalar_dense")


@pytest.mark.parametrize("name,call", [
    ("idgi", lambda m, x: rk.idgi_attribute(m, x, n=16, target=1, batch_size=32)),
    ("path_and_idgi_schedules", lambda m, x: rk.idgi.path_and_idgi_schedules(m, x, "blurig", [I.rule_nodes("left", n)[0] for n in (4, 8, 16)],
                                                                             target=1, batch_size=32, max_sigma=3.0)),
    ("algorithm 1", lambda m, x: S.per_image_derivatives(m, x, "ig", k=16, target=1, batch_size=32)),
    ("response curve", lambda m, x: I.response_along_path(m, x, "ig", torch.linspace(0, 1, 9), target=1, batch_size=32)),
    ("more images than a pass", lambda m, x: rk.attribute(m, torch.cat([x, x]), n=4, target=1, batch_size=4)),
])
def test_the_other_engine_calls_sync_at_most_once(name, call):
    model, x = Counting(ConvNet().eval()), _images()
    counts = _profiled(lambda: call(model, x))
    assert counts.get("aten::_local_scalar_dense", 0) <= 1


def test_a_refinement_to_a_tolerance_makes_one_forward_backward_per_pass():
    """tol=: every round's new (image, α) pairs go through full passes (all but a round's last), one forward and one
    backward each, and f(x), f(x') come from the nodes at α = 1 and 0 (no pass of their own)."""
    model, x = Counting(ConvNet().eval()), _images()
    counts = _profiled(lambda: model.calls.clear() or rk.attribute(model, x, tol=1e-4, target=1, batch_size=16))
    r = rk.attribute(ConvNet().eval(), x, tol=1e-4, target=1, batch_size=16)
    assert int(r.gradients.min()) > 17  # refined beyond the starting level
    assert sum(model.calls) == int(r.gradients.sum()) and max(model.calls) <= 16
    assert counts.get("aten::convolution", 0) == counts.get("aten::convolution_backward", 0) == len(model.calls)
    # a round's points fill its passes but the last: the new pairs of all images go through together
    rounds = int(r.gradients.max() - 17) // 2 + 1
    assert sum(c < 16 for c in model.calls) <= rounds


def test_idgi_takes_f_of_the_input_from_its_passes():
    model, x = Counting(ConvNet().eval()), _images()
    r = rk.idgi_attribute(model, x, n=16, target=1, batch_size=32)
    assert model.calls == [e - s for s, e in I.pass_bounds(16 * 4, 4, 32, unit=4)] == [36, 32]
    torch.testing.assert_close(r.f_input, I.target_output(model, x, r.target), rtol=1e-5, atol=1e-7)


def test_target_none_adds_only_the_prediction():
    model, x = Counting(ConvNet().eval()), _images()
    rk.attribute(model, x, n=16, batch_size=64)
    assert model.calls == [4, 68]  # the prediction's no-grad forward of the 4 images, then the one pass


@pytest.mark.parametrize("bad,error,match", [
    ({"x": torch.full((4, 3, 8, 8), float("nan"))}, ValueError, "NaN or Inf"),
    ({"x": torch.full((4, 3, 8, 8), 200.0)}, ValueError, "0..255"),
    ({"target": 3}, ValueError, r"target must be class indices in \[0, 2\]"),
    ({"target": [0, -1, 1, 2]}, ValueError, r"target must be class indices in \[0, 2\]"),
    ({"baseline": torch.full((4, 3, 8, 8), float("inf"))}, ValueError, "baseline holds NaN or Inf"),
])
@pytest.mark.parametrize("path", ["ig", "guidedig"])
def test_checks_made_on_the_device_still_name_the_bad_input(bad, error, match, path):
    kw = {"x": _images(), "target": 1, **bad}
    x = kw.pop("x")
    with pytest.raises(error, match=match):
        rk.attribute(ConvNet().eval(), x, path=path, n=4, **kw)
    with pytest.raises(error, match=match):
        rk.idgi_attribute(ConvNet().eval(), x, path=path, n=4, **kw)


def test_endpoint_rows_give_the_same_f_as_a_forward_of_the_images():
    model, x = ConvNet().eval(), _images(5)
    for rule in ("left", "right", "midpoint", "gausslegendre"):
        r = rk.attribute(model, x, rule=rule, n=6, target=2, batch_size=9)
        with torch.no_grad():
            # f of a point inside a batched pass may differ from a 5-image forward by float rounding
            torch.testing.assert_close(r.f_input, I.target_output(model, x, r.target), rtol=1e-5, atol=1e-7)
            torch.testing.assert_close(r.f_baseline, I.target_output(model, torch.zeros_like(x), r.target), rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------------------------ batch_size='auto'
class FakeMemory(I.DeviceMemory):
    """A device with ``free`` bytes where a pass takes ``fixed`` + ``per_point`` bytes per point (read from the
    Counting model's last forward), so 'auto' runs its GPU code path on the CPU."""

    def __init__(self, model: Counting, free: float, per_point: float, fixed: float = 5e6):
        self.model, self.free, self.per_point, self.fixed, self.probes = model, free, per_point, fixed, 0

    def measures(self, device) -> bool:
        return True

    def free_bytes(self, device) -> float:
        return self.free

    def peak_bytes(self, fn, device) -> float:
        self.probes += 1
        fn()
        return self.fixed + self.per_point * self.model.calls[-1]


def test_auto_batch_size_fills_the_free_memory_and_probes_once(monkeypatch):
    model, x = Counting(ConvNet().eval()), _images()
    fake = FakeMemory(model, free=1e12, per_point=1e6)
    monkeypatch.setattr(I, "MEMORY", fake)
    ref = rk.attribute(ConvNet().eval(), x, n=16, target=1, batch_size=1000)
    r = rk.attribute(model, x, n=16, target=1, batch_size="auto")
    # two probe passes of 4 and 12 points, then all 64 points and f(x)'s 4 rows in one pass
    assert model.calls == [*I.AUTO_PROBE_POINTS, 68] and fake.probes == 2
    torch.testing.assert_close(r.attr, ref.attr, rtol=1e-5, atol=1e-7)
    model.calls.clear()
    rk.attribute(model, x, n=16, target=1, batch_size="auto")
    assert model.calls == [68] and fake.probes == 2  # measured once per model and setting


def test_auto_batch_size_with_tol_takes_each_round_in_one_pass(monkeypatch):
    model, x = Counting(ConvNet().eval()), _images()
    fake = FakeMemory(model, free=1e12, per_point=1e6)
    monkeypatch.setattr(I, "MEMORY", fake)
    r = rk.attribute(model, x, tol=1e-4, n_max=129, target=1, batch_size="auto")
    # sized for n_max points per image, not the starting level's 17: the starting level's 4 × 17 pairs, then every
    # round's new pairs of all unfinished images, each in one pass
    assert model.calls[:2] == list(I.AUTO_PROBE_POINTS) and model.calls[2] == 4 * 17
    assert sum(model.calls[2:]) == int(r.gradients.sum()) and len(model.calls) > 4


def test_auto_batch_size_splits_what_does_not_fit(monkeypatch):
    model, x = Counting(ConvNet().eval()), _images()
    monkeypatch.setattr(I, "MEMORY", FakeMemory(model, free=1e9, per_point=1e7))
    rk.attribute(model, x, n=16, target=1, batch_size="auto")
    fit = I.fit_batch_size(1e9, 1e7, I.AUTO_MAX_BATCH)  # 60 points fit in 0.6 of the free memory
    passes = model.calls[len(I.AUTO_PROBE_POINTS):]
    assert fit == 60 and max(passes) <= fit and sum(passes) == 68 and len(passes) == 2


def test_auto_batch_size_on_a_large_gpu_takes_thousands_of_points(monkeypatch):
    model, x = Counting(ConvNet().eval()), _images()
    # an H200's ~140 GB free and 40 MB per point (EfficientNet-Lite0 at 224 px, fp32, forward + backward)
    monkeypatch.setattr(I, "MEMORY", FakeMemory(model, free=140e9, per_point=40e6))
    t = torch.zeros(4, dtype=torch.long)
    bs = I.auto_batch_size(model, x, t)
    assert bs == int(I.fit_batch_size(140e9, 40e6, I.AUTO_MAX_BATCH) / I.END_SLACK) and 1000 < bs <= I.AUTO_MAX_BATCH
    assert I.auto_batch_size(model, x, t, total=500) == 500  # everything in one pass when it fits


# ------------------------------------------------------------------------------------- capture (CUDA graphs)
def test_capture_mode_marks_each_pass_and_copies_its_outputs(monkeypatch):
    """'reduce-overhead' / 'cudagraphs' reuse graph memory between passes: the engine marks a step before each
    pass and copies f and ∇f out.  Exercised on the CPU with the eager backend marked as capturing."""
    marks = []
    monkeypatch.setattr(I, "CAPTURE", (*I.CAPTURE, "eager"))
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
    model, x = ConvNet().eval(), _images(3)
    ref = rk.attribute(model, x, n=8, target=2, batch_size=7)
    r = rk.attribute(model, x, n=8, target=2, batch_size=7, compile="eager")
    assert len(marks) == 4  # 24 points and f(x)'s 3 rows: four passes of 7 (the last padded)
    torch.testing.assert_close(r.attr, ref.attr, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(r.f_input, ref.f_input, rtol=1e-5, atol=1e-7)


def test_cudagraphs_backend_runs_and_equals_eager():
    torch._dynamo.reset()
    model, x = ConvNet().eval(), _images(3)
    ref = rk.attribute(model, x, n=8, target=2, batch_size=7)
    r = rk.attribute(model, x, n=8, target=2, batch_size=7, compile="cudagraphs")  # on a CPU: no graph, same code path
    torch.testing.assert_close(r.attr, ref.attr, rtol=1e-5, atol=1e-7)
    assert I.make_plan(model, engine=rk.Engine(compile="reduce-overhead")).capture


@pytest.mark.slow  # inductor compiles C++ on a CPU: about a minute
def test_reduce_overhead_mode_equals_eager():
    torch._dynamo.reset()
    model, x = ConvNet().eval(), _images(3)
    ref = rk.attribute(model, x, n=8, target=2, batch_size=7)
    r = rk.attribute(model, x, n=8, target=2, batch_size=7, compile="reduce-overhead")
    torch.testing.assert_close(r.attr, ref.attr, rtol=1e-5, atol=1e-7)


def test_the_engine_changes_no_global_torch_flag():
    flags = lambda: (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32,  # noqa: E731
                     torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision(), torch.is_grad_enabled())
    before = flags()
    rk.attribute(ConvNet().eval(), _images(), n=4, target=1, batch_size="auto", amp_dtype="bf16", channels_last=True)
    rk.idgi_attribute(ConvNet().eval(), _images(), n=4, target=1)
    assert flags() == before


@pytest.mark.parametrize("call", [
    lambda m, x: rk.attribute(m, x, path="blurig", rule="midpoint", n=8, target=1, batch_size=7, max_sigma=3.0),
    lambda m, x: rk.attribute(m, torch.cat([x, x]), path="guidedig", n=4, target=1, batch_size=4),
    lambda m, x: rk.idgi_attribute(m, x, n=8, target=1, batch_size=7),
    lambda m, x: S.per_image_derivatives(m, x, "ig", k=8, target=1, batch_size=7),
    lambda m, x: rk.attribute(m, x, path="blurig", tol=0.01, target=1, batch_size=7, max_sigma=3.0),
    lambda m, x: rk.idgi_attribute(m, x, tol=0.01, target=1, batch_size=7),
])
def test_the_path_is_looked_up_once_per_call(monkeypatch, call):
    from riemannkit import paths as P

    seen = []
    real = P.check_path_name
    monkeypatch.setattr(P, "check_path_name", lambda path: seen.append(path) or real(path))
    call(ConvNet().eval(), _images())
    assert len(seen) == 1, seen  # one Plan per call: every pass and image batch reuses the resolved path
