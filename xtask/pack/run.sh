#!/usr/bin/env bash
# GenFX GPU pack: runs every GPU test, then every GPU benchmark, of the build
# this pack was made from (`cargo xtask gpu-pack`), within a time budget, on a
# machine with no Rust toolchain and no network.
#
#   bash run.sh BUDGET_SECONDS              on the real card
#   bash run.sh --emulated BUDGET_SECONDS   on the packed emulated CUDA driver
#
# Everything it writes goes to $OUT (default ./out), at most 7 files:
#   summary.txt    what ran, how it ended, what was found on the machine
#   report.txt     the GPU tests' own report: `ran NAME` / `skipped NAME: why`
#   tests.log      the test binaries' output
#   benches.log    the benchmarks' output, and the wheel installation
#   figures.jsonl  each benchmark's last line (JSON), one per line
#   nvidia-smi.txt nvidia-smi's output, when there is one
#   genfx.log      the engine's log, when it wrote one
# Exits 0 when every test passed (and on a card: ran, none skipped) and every
# benchmark gave its figures; 1 otherwise; 2 for bad usage.
#
# Written by xtask from xtask/pack/run.sh; commit @GENFX_COMMIT@.

set -u

PACK=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The test and bench binaries travel compressed (the pack must stay under the
# device machine's 64 MiB); unpack them once, next to this script.
if [ ! -d "$PACK/bin" ] && [ -f "$PACK/bin.tar.gz" ]; then
    if ! tar -xzf "$PACK/bin.tar.gz" -C "$PACK"; then
        echo "run.sh: cannot unpack $PACK/bin.tar.gz" >&2
        exit 2
    fi
fi
COMMIT="@GENFX_COMMIT@"
# seconds kept back at the end for writing the summary
RESERVE=10
# shares of the remaining budget: a test binary gets TEST_WEIGHT parts, a
# benchmark BENCH_WEIGHT, of what is left divided among what is still to run
TEST_WEIGHT=2
BENCH_WEIGHT=3
# in --emulated mode, the time kept back for each item still to run
EMULATED_FLOOR=60
# in --emulated mode the benchmarks only start and report "no device"
# (gpu_plan, which always runs on the packed emulated device, runs in full)
SMOKE_LIMIT=60

usage() {
    echo "usage: $0 [--emulated] BUDGET_SECONDS  (results go to \$OUT, default ./out)" >&2
    exit 2
}

EMULATED=0
BUDGET=""
for arg in "$@"; do
    case "$arg" in
    --emulated) EMULATED=1 ;;
    -h | --help) usage ;;
    '' | *[!0-9]*) echo "run.sh: unknown argument '$arg'" >&2; usage ;;
    *) BUDGET=$arg ;;
    esac
done
[ -n "$BUDGET" ] || usage
START=$(date +%s)

OUT=${OUT:-./out}
if ! mkdir -p "$OUT" || ! OUT=$(cd "$OUT" && pwd); then
    echo "run.sh: cannot create $OUT" >&2
    exit 2
fi
for f in summary.txt report.txt tests.log benches.log figures.jsonl nvidia-smi.txt genfx.log; do
    rm -f "$OUT/$f"
done
: >"$OUT/summary.txt"
: >"$OUT/figures.jsonl"
: >"$OUT/tests.log"
: >"$OUT/benches.log"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/genfx-pack.XXXXXX") || exit 2
if [ "${GENFX_PACK_KEEP_WORK:-0}" != 1 ]; then
    trap 'rm -rf "$WORK"' EXIT
fi

say() { echo "$*" | tee -a "$OUT/summary.txt"; }
left() { echo $((BUDGET - ($(date +%s) - START) - RESERVE)); }

FAILURES=0
fail() {
    FAILURES=$((FAILURES + 1))
    say "$*"
}

# The newest libnvrtc among the given paths (globs that matched nothing and
# NVRTC's builtins library are left out).
newest_nvrtc() {
    local f
    for f in "$@"; do
        case "$f" in *builtins*) continue ;; esac
        [ -e "$f" ] && echo "$f"
    done | sort -V | tail -n 1
}

python_dirs() {
    "$PY" -c 'import site, sys; print("\n".join(site.getsitepackages() + [site.getusersitepackages()] + sys.path))' 2>/dev/null | sort -u
}

# $GENFX_NVRTC_LIB, the CUDA toolkit, a pip wheel beside PyTorch, the loader's cache.
find_nvrtc() {
    local found dir
    if [ -n "${GENFX_NVRTC_LIB:-}" ]; then
        if [ -e "$GENFX_NVRTC_LIB" ]; then
            echo "$GENFX_NVRTC_LIB"
            return
        fi
        echo "run.sh: GENFX_NVRTC_LIB=$GENFX_NVRTC_LIB does not exist; searching" >&2
    fi
    found=$(newest_nvrtc /usr/local/cuda/lib64/libnvrtc.so*)
    [ -n "$found" ] || found=$(newest_nvrtc /usr/local/cuda*/lib64/libnvrtc.so* /usr/local/cuda*/targets/*/lib/libnvrtc.so*)
    if [ -z "$found" ] && [ -n "$PY" ]; then
        while read -r dir; do
            found=$(newest_nvrtc "$dir"/nvidia/*/lib/libnvrtc.so*)
            [ -n "$found" ] && break
        done < <(python_dirs)
    fi
    if [ -z "$found" ] && command -v ldconfig >/dev/null; then
        local cached=()
        mapfile -t cached < <(ldconfig -p 2>/dev/null | awk '/libnvrtc\.so/ {print $NF}')
        found=$(newest_nvrtc "${cached[@]}")
    fi
    echo "$found"
}

# Installs the packed wheels that Python lacks (at their version) into
# $WORK/site and puts it on PYTHONPATH.
install_wheels() {
    local site="$WORK/site" whl base dist ver have
    local need=()
    for whl in "$PACK"/wheels/*.whl; do
        [ -e "$whl" ] || continue
        base=$(basename "$whl")
        dist=${base%%-*}
        ver=${base#*-}
        ver=${ver%%-*}
        have=$("$PY" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$dist" 2>/dev/null)
        if [ "$have" = "$ver" ]; then
            echo "wheel $dist $ver: already installed" >>"$OUT/benches.log"
        else
            need+=("$whl")
        fi
    done
    if [ ${#need[@]} -gt 0 ]; then
        echo "installing into $site: ${need[*]##*/}" >>"$OUT/benches.log"
        if ! PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
            --disable-pip-version-check --target "$site" "${need[@]}" >>"$OUT/benches.log" 2>&1; then
            say "warning: pip could not install the packed wheels (see benches.log)"
        fi
    fi
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
}

# The names libtest lists under its last "failures:" heading, indented.
failed_tests() {
    awk '/^failures:$/ { names = ""; inside = 1; next }
         inside && /^    [^ ]/ { names = names "   " $0 "\n"; next }
         inside && /^$/ && names != "" { inside = 0 }
         END { printf "%s", names }' "$1"
}

# Seconds for the next item: its weight's share of what is left, divided
# among the weights of everything still to run.
share() {
    local weight=$1 weights_left=$2 l fair rest
    l=$(left)
    [ "$l" -gt 0 ] || { echo 0; return; }
    fair=$((l * weight / weights_left))
    if [ "$EMULATED" = 1 ]; then
        # on the emulator time is the host's, not a lease: an item may use
        # what is left beyond EMULATED_FLOOR seconds for each item after it
        rest=$(((weights_left - weight) * EMULATED_FLOOR / TEST_WEIGHT))
        [ $((l - rest)) -gt "$fair" ] && fair=$((l - rest))
    fi
    echo "$fair"
}

# --- the machine ---------------------------------------------------------------
PY=${GENFX_TORCH_PYTHON:-$(command -v python3 || command -v python || true)}
MODE="real card"
[ "$EMULATED" = 1 ] && MODE="emulated CUDA device (packed libgenfx_cuda_emu.so)"
say "GenFX GPU pack, commit $COMMIT; mode: $MODE; budget ${BUDGET} s"
say "host: $(uname -srm)"

if command -v nvidia-smi >/dev/null; then
    nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
    say "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n 1)"
else
    say "gpu: no nvidia-smi"
fi

NVRTC=$(find_nvrtc)
if [ -n "$NVRTC" ]; then
    export GENFX_NVRTC_LIB="$NVRTC"
    say "nvrtc: $NVRTC"
else
    unset GENFX_NVRTC_LIB
    say "warning: no libnvrtc found (set GENFX_NVRTC_LIB); kernels cannot be compiled"
fi

export GENFX_FIXTURES="$PACK/fixtures"
export GENFX_TOOLS_DIR="$PACK/tools"
export GENFX_KERNEL_CACHE="$WORK/kernel-cache"
export GENFX_CACHE_DIR="$WORK/shots"
export GENFX_LOG="$WORK/genfx.log"
export GENFX_BENCH_LTX_DIR="$WORK/bench-ltx-2b-random"
# the whole-shot bench's full-size random model (about 16 GB, written once)
export GENFX_BENCH_SHOT_DIR="$WORK/bench-ltx-2b-shot"
export HF_HUB_OFFLINE=1
export RUST_BACKTRACE=1
unset GENFX_FORCE_NO_CUDA GENFX_DEVICE
if [ "$EMULATED" = 1 ]; then
    unset GENFX_GPU_TEST_REPORT
    # exact-size buffers, so the emulator's bounds checks see short ones
    export GENFX_CUDA_NO_CACHING=1
    export GENFX_CUDA_DRIVER_LIB="$PACK/lib/libgenfx_cuda_emu.so"
    export GENFX_CUBLAS_LIB="$PACK/lib/libgenfx_cublas_emu.so"
    export GENFX_CUBLASLT_LIB="$PACK/lib/libgenfx_cublaslt_emu.so"
    echo "(emulated run: the tests open the emulated device and write no report)" >"$OUT/report.txt"
else
    unset GENFX_CUDA_DRIVER_LIB GENFX_CUBLAS_LIB GENFX_CUBLASLT_LIB
    export GENFX_GPU_TEST_REPORT="$OUT/report.txt"
    : >"$GENFX_GPU_TEST_REPORT"
fi

TESTS=()
for f in "$PACK"/bin/tests/*; do [ -x "$f" ] && TESTS+=("$f"); done
BENCHES=()
for f in "$PACK"/bin/benches/*; do [ -x "$f" ] && BENCHES+=("$f"); done
say "to run: ${#TESTS[@]} test binaries, ${#BENCHES[@]} benchmarks"
WEIGHTS_LEFT=$((${#TESTS[@]} * TEST_WEIGHT + ${#BENCHES[@]} * BENCH_WEIGHT))

# --- tests -----------------------------------------------------------------------
TEST_ARGS=(--test-threads=1)
# on a card, tests marked #[ignore] (too slow for the emulator) run too
[ "$EMULATED" = 1 ] || TEST_ARGS+=(--include-ignored)
for bin in "${TESTS[@]}"; do
    name=$(basename "$bin")
    limit=$(share "$TEST_WEIGHT" "$WEIGHTS_LEFT")
    WEIGHTS_LEFT=$((WEIGHTS_LEFT - TEST_WEIGHT))
    if [ "$limit" -lt 5 ]; then
        fail "test $name: NOT RUN (budget spent)"
        continue
    fi
    echo "=== test $name (timeout ${limit} s) ===" >>"$OUT/tests.log"
    t0=$(date +%s)
    (cd "$WORK" && timeout -k 10 "$limit" "$bin" "${TEST_ARGS[@]}") >"$WORK/$name.log" 2>&1
    rc=$?
    secs=$(($(date +%s) - t0))
    cat "$WORK/$name.log" >>"$OUT/tests.log"
    counts=$(grep -E '^test result:' "$WORK/$name.log" | tail -n 1)
    case $rc in
    0) say "test $name: PASS in ${secs} s: ${counts:-no test result line}" ;;
    124 | 137) fail "test $name: TIMEOUT after ${secs} s (limit ${limit} s)" ;;
    *) fail "test $name: FAIL (exit $rc) in ${secs} s: ${counts:-no test result line}" ;;
    esac
    failed_tests "$WORK/$name.log" | tee -a "$OUT/summary.txt"
done

if [ "$EMULATED" != 1 ]; then
    ran=$(grep -c '^ran ' "$OUT/report.txt")
    skipped=$(grep -c '^skipped ' "$OUT/report.txt")
    if [ "$skipped" -gt 0 ]; then
        fail "report: $ran ran on the card, $skipped SKIPPED:"
        grep '^skipped ' "$OUT/report.txt" | sed 's/^/    /' | tee -a "$OUT/summary.txt"
    elif [ "$ran" -eq 0 ]; then
        fail "report: no GPU test reported running on the card"
    else
        say "report: $ran GPU tests ran on the card, none skipped"
    fi
fi

# --- benchmarks --------------------------------------------------------------------
if [ -n "$PY" ]; then
    export GENFX_TORCH_PYTHON="$PY"
    install_wheels
    say "python: $PY: $("$PY" -c 'import torch, diffusers; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "diffusers", diffusers.__version__)' 2>&1 | tail -n 1)"
else
    say "warning: no python; the benchmarks' PyTorch halves will fail"
fi
if [ "$EMULATED" = 1 ]; then
    say "benchmarks: smoke run only (GENFX_FORCE_NO_CUDA=1: each starts, finds no device and says so; nothing is measured)"
fi

for bin in "${BENCHES[@]}"; do
    name=$(basename "$bin")
    limit=$(share "$BENCH_WEIGHT" "$WEIGHTS_LEFT")
    WEIGHTS_LEFT=$((WEIGHTS_LEFT - BENCH_WEIGHT))
    case "$name" in gpu_plan*) ;; *) [ "$EMULATED" = 1 ] && [ "$limit" -gt "$SMOKE_LIMIT" ] && limit=$SMOKE_LIMIT ;; esac
    if [ "$limit" -lt 5 ]; then
        fail "bench $name: NOT RUN (budget spent)"
        echo "{\"bench\": \"$name\", \"error\": \"not run: budget spent\"}" >>"$OUT/figures.jsonl"
        continue
    fi
    echo "=== bench $name (timeout ${limit} s) ===" >>"$OUT/benches.log"
    t0=$(date +%s)
    plan=0
    case "$name" in gpu_plan*) plan=1 ;; esac
    if [ "$plan" = 1 ]; then
        # a plan always runs on the packed emulated device, in its dry run
        (cd "$WORK" && GENFX_CUDA_DRIVER_LIB="$PACK/lib/libgenfx_cuda_emu.so" \
            GENFX_CUBLAS_LIB="$PACK/lib/libgenfx_cublas_emu.so" \
            GENFX_CUBLASLT_LIB="$PACK/lib/libgenfx_cublaslt_emu.so" \
            timeout -k 10 "$limit" "$bin") >"$WORK/$name.out" 2>"$WORK/$name.err"
    elif [ "$EMULATED" = 1 ]; then
        (cd "$WORK" && GENFX_FORCE_NO_CUDA=1 timeout -k 10 "$limit" "$bin") >"$WORK/$name.out" 2>"$WORK/$name.err"
    else
        (cd "$WORK" && timeout -k 10 "$limit" "$bin") >"$WORK/$name.out" 2>"$WORK/$name.err"
    fi
    rc=$?
    secs=$(($(date +%s) - t0))
    cat "$WORK/$name.out" >>"$OUT/benches.log"
    if [ -s "$WORK/$name.err" ]; then
        echo "--- stderr ---" >>"$OUT/benches.log"
        cat "$WORK/$name.err" >>"$OUT/benches.log"
    fi
    last=$(grep -v '^[[:space:]]*$' "$WORK/$name.out" | tail -n 1)
    case "$last" in
    '{'*) grep '^{' "$WORK/$name.out" >>"$OUT/figures.jsonl" ;;
    *)
        echo "{\"bench\": \"$name\", \"error\": \"no JSON line (exit $rc)\"}" >>"$OUT/figures.jsonl"
        last=""
        ;;
    esac
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        fail "bench $name: TIMEOUT after ${secs} s (limit ${limit} s)"
    elif [ "$rc" = 2 ] && [[ "$last" == *'"skipped"'* ]]; then
        if [ "$EMULATED" = 1 ]; then
            say "bench $name: smoke OK in ${secs} s (started, reported no device)"
        else
            fail "bench $name: SKIPPED on the card: $last"
        fi
    elif [ "$rc" != 0 ] || [ -z "$last" ] || [[ "$last" == *'"error"'* ]]; then
        fail "bench $name: FAIL (exit $rc) in ${secs} s"
    else
        say "bench $name: OK in ${secs} s"
    fi
done

# --- the end -------------------------------------------------------------------------
[ -s "$WORK/genfx.log" ] && cp "$WORK/genfx.log" "$OUT/genfx.log"
say "used $(($(date +%s) - START)) s of ${BUDGET} s; results in $OUT"
if [ "$FAILURES" -gt 0 ]; then
    say "RESULT: FAIL ($FAILURES problems)"
    exit 1
fi
say "RESULT: PASS"
exit 0
