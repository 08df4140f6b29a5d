#!/usr/bin/env bash
# bench_ort.sh: issue 3's speed and memory benchmark, onnxslm's Go runtime
# against onnxruntime (internal/cmd/benchort; results in docs/BENCHMARKS.md).
# Not run in CI.
#
#   bash scripts/bench_ort.sh [BIG_MODEL]     # default /tmp/llama374m.onnx
#
# 1. llama8 (../shared/testmodels) on the 16×128 calibration tokens;
# 2. the ~370M-parameter random Llama of ../shared/tools/biglm (BIG_MODEL; made
#    with /usr/bin/python3 ../shared/tools/biglm/make_random_llama.py BIG_MODEL
#    when missing, which needs Debian's python3-torch) on 4×128 random ids;
# each with onnxruntime's default thread pool (spinning) and with
# session.intra_op.allow_spinning=0; then the Go side alone under
# /usr/bin/time -v for its peak RSS.
#
# Environment: BENCH_THREADS (default 2), BENCH_REPS_SMALL (default 15),
# BENCH_REPS_BIG (default 5).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
big="${1:-/tmp/llama374m.onnx}"
threads="${BENCH_THREADS:-2}"
shared="$repo/../shared"
say() { printf '== %s\n' "$*" >&2; }

[ -f "$repo/tools/judges/node_modules/onnxruntime-node/package.json" ] || bash "$repo/.ci/install-judges.sh"
[ -x /usr/bin/time ] || { say "installing time"; apt-get install -y -qq time >/dev/null; }
bin="$(mktemp -d)/benchort"
(cd "$repo" && go build -o "$bin" ./internal/cmd/benchort)
cd "$repo"

say "uptime: $(uptime)"
for spin in true false; do
	say "llama8 16×128, onnxruntime spinning=$spin"
	"$bin" -model "$shared/testmodels/llama8.onnx" -tokens "$shared/testmodels/tokens/calib_train_16x128.npy" \
		-threads "$threads" -reps "${BENCH_REPS_SMALL:-15}" -ort-spin="$spin"
done

if [ ! -f "$big" ]; then
	say "making $big (needs python3-torch; several minutes)"
	/usr/bin/python3 "$shared/tools/biglm/make_random_llama.py" "$big"
fi
for spin in true false; do
	say "$big 4×128, onnxruntime spinning=$spin"
	"$bin" -model "$big" -batch 4 -seq 128 -seed 1 -threads "$threads" -reps "${BENCH_REPS_BIG:-5}" -ort-spin="$spin"
done
say "$big: Go side alone, peak RSS"
/usr/bin/time -v "$bin" -model "$big" -batch 4 -seq 128 -seed 1 -threads "$threads" -reps "${BENCH_REPS_BIG:-5}" -engines go 2>&1 |
	grep -E 'onnxslm|peak_rss|weights|Maximum resident|Elapsed'
say "uptime: $(uptime)"
