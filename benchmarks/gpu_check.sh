#!/usr/bin/env bash
# fastcam on one NVIDIA GPU, from a fresh checkout, with the CUDA torch already
# installed (never reinstalled: pip is pinned to the installed torch, torchvision
# and triton):
#   1. builds fastcam with FASTCAM_CUDA=ON for 75;80;90 and this GPU's own
#      architecture (editable install, so the tests import the build);
#   2. runs every GPU test (compiled Triton parity per op, CUDA kernels, every
#      method on CUDA with both backends) and fails if any failed or was skipped;
#   3. the timing table: `fastcam bench` (what a user runs on their own GPU) on
#      ResNet-50 B32 with the triton and the cuda backends in fp32 and bf16, beside
#      pytorch-grad-cam, TorchCAM and Captum: OUT/bench-<backend>/bench.{json,png};
#   4. times every method on ResNet-50 B32 (Score-CAM B1) with both backends once
#      more, each map beside the other backend's and the peers', and checks that the
#      maps agree.
# Writes OUT/gpu_check.json, OUT/gpu_check.md and the logs; exit status 0 when
# everything passed and agreed, 1 on a failure, skip or mismatch, 2 on a setup
# error, 3 when the time budget ran out before every row was measured.
#
#   benchmarks/gpu_check.sh [--out DIR] [--wheels DIR] [--python PY] [--budget-s S]
#
# --wheels DIR: install the build tools and the optional test dependencies
# (pip install ".[gpu-check]") offline from the wheels in DIR
# (pip download -d DIR <the list in docs/gpu.md> on a connected machine).
# Without it pip uses its configured index.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/gpu-check"
WHEELS=""
PY="${PYTHON:-python3}"
BUDGET_S=240

while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --wheels) WHEELS="$2"; shift 2 ;;
    --python) PY="$2"; shift 2 ;;
    --budget-s) BUDGET_S="$2"; shift 2 ;;
    -h|--help) sed -n '2,24p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
cd "$ROOT"
START=$SECONDS
step() { echo "== [$((SECONDS - START)) s] $*"; }

# --- 0. the GPU and the installed torch -----------------------------------------
step "environment"
if ! "$PY" - > "$OUT/constraints.txt" 2> "$OUT/env.log" <<'EOF'
import importlib.metadata as md
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("torch %s sees no CUDA GPU (torch.version.cuda=%s)" % (torch.__version__, torch.version.cuda))
for name in ("torch", "torchvision", "triton"):
    try:
        print(f"{name}=={md.version(name)}")
    except md.PackageNotFoundError:
        pass
EOF
then
  cat "$OUT/env.log" >&2
  echo "gpu_check.sh: needs an installed CUDA build of torch that sees a GPU" >&2
  exit 2
fi
if ! grep -q '^triton==' "$OUT/constraints.txt"; then
  echo "gpu_check.sh: triton is not installed (it ships with CUDA torch wheels)" >&2
  exit 2
fi
ARCH="$("$PY" -c 'import torch; a, b = torch.cuda.get_device_capability(); print(f"{a}{b}")')"
ARCHS="75;80;90"
case ";$ARCHS;" in *";$ARCH;"*) ;; *) ARCHS="$ARCHS;$ARCH" ;; esac
"$PY" -c 'import sys, torch; print(sys.version.split()[0], torch.__version__, torch.version.cuda, torch.cuda.get_device_name())'
echo "pinned: $(tr '\n' ' ' < "$OUT/constraints.txt")  CUDA architectures: $ARCHS"

PIP=("$PY" -m pip install --disable-pip-version-check -c "$OUT/constraints.txt")
if [[ -n "$WHEELS" ]]; then
  PIP+=(--no-index --find-links "$WHEELS")
fi

# --- 1. build ----------------------------------------------------------------
step "build (FASTCAM_CUDA=ON, architectures $ARCHS)"
if ! command -v nvcc > /dev/null && [[ ! -x /usr/local/cuda/bin/nvcc ]]; then
  echo "gpu_check.sh: nvcc not found (PATH, /usr/local/cuda/bin): FASTCAM_CUDA=ON needs it" >&2
  exit 2
fi
if ! "${PIP[@]}" "scikit-build-core>=0.10" "pybind11>=2.12" "cmake>=3.24" ninja \
    > "$OUT/build.log" 2>&1 \
  || ! FASTCAM_CUDA=ON FASTCAM_CUDA_ARCHITECTURES="$ARCHS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "${PIP[@]}" --no-build-isolation -e ".[gpu-check]" >> "$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log" >&2
  echo "gpu_check.sh: the build failed (log: $OUT/build.log)" >&2
  exit 1
fi
"$PY" - "$ARCH" <<'EOF'
import sys
import fastcam
import fastcam._C as C
arch = sys.argv[1]
assert C.cuda_compiled, "fastcam._C was built without CUDA kernels"
assert arch in C.cuda_architectures.split(";"), (arch, C.cuda_architectures)
print("fastcam", fastcam.__file__, "CUDA architectures", C.cuda_architectures)
EOF
# the constraints held: torch is the one that was installed
"$PY" -m pip check > "$OUT/pip_check.log" 2>&1 || true
"$PY" - "$OUT/constraints.txt" <<'EOF'
import importlib.metadata as md
import sys
for line in open(sys.argv[1]):
    name, version = line.strip().split("==")
    assert md.version(name) == version, f"{name} changed: {md.version(name)} != {version}"
EOF

# --- 2. every GPU test, no skip allowed -----------------------------------------
step "GPU tests"
set +e
env -u TRITON_INTERPRET "$PY" -m pytest -q -p no:cacheprovider -rs \
  tests/ops/test_gpu_triton.py tests/methods/test_gpu_methods.py \
  tests/ops/test_cam_combine.py tests/ops/test_mask_blend.py tests/ops/test_rank_reveal.py \
  tests/ops/test_adaptive_kde.py tests/ops/test_build.py \
  -k "(gpu or cuda) and not without_gpu and not compile" \
  --junitxml="$OUT/gpu_tests.xml" > "$OUT/gpu_tests.log" 2>&1
TESTS_RC=$?
set -e
tail -15 "$OUT/gpu_tests.log"
"$PY" benchmarks/gpu_check.py tests --junit "$OUT/gpu_tests.xml" || true

# --- 3. the timing table: fastcam bench -----------------------------------------
step "fastcam bench (triton, then cuda; the peers with the first)"
BENCH_RC=0
PEERS=(--peers)
for backend in triton cuda; do
  set +e
  timeout "$BUDGET_S" "$PY" -m fastcam bench --model torchvision:resnet50 --device cuda --backend "$backend" \
    --methods cam,gradcam,gradcam++,liftcam,shapcam,advise --batch-size 32 --precision fp32,bf16 \
    --repeats 5 "${PEERS[@]}" --out "$OUT/bench-$backend" > "$OUT/bench-$backend.log" 2>&1
  rc=$?
  set -e
  cat "$OUT/bench-$backend.log"
  [[ $rc -eq 0 ]] || BENCH_RC=$rc
  PEERS=()
done

# --- 4. timings and agreement -------------------------------------------------
step "timings (budget ${BUDGET_S} s)"
set +e
"$PY" benchmarks/gpu_check.py time --out "$OUT" --budget-s "$BUDGET_S" \
  --junit "$OUT/gpu_tests.xml" > "$OUT/timings.log" 2>&1
TIME_RC=$?
set -e
cat "$OUT/gpu_check.md" 2> /dev/null || tail -30 "$OUT/timings.log"

step "done: $OUT/gpu_check.md, $OUT/gpu_check.json, $OUT/bench-*/ (tests rc $TESTS_RC, bench rc $BENCH_RC, timings rc $TIME_RC)"
if [[ $TESTS_RC -ne 0 || $BENCH_RC -ne 0 ]]; then
  exit 1
fi
exit "$TIME_RC"
