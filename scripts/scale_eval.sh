#!/usr/bin/env bash
# scale_eval.sh: issue 13's eval figures on a float16 model: `onnxslm eval` on
# 4×128 seeded random ids, then onnxruntime-node (tools/judges/ort_run.js, 2
# threads) on the same file and ids, each under /usr/bin/time -v; prints wall
# time, CPU time, peak RSS and its ratio to the weight file, the load average
# around each step, and both engines' mean next-token NLL. Not run in CI.
#
#   bash scripts/scale_eval.sh [MODEL] [WORKDIR]
#
# MODEL defaults to /tmp/onnxslm-scale/tinyllama1b-fp16.onnx, made when missing
# with internal/cmd/genmodel (22 layers, d 2048, 32 heads, FFN 5632, vocab
# 32000, float16: 1.26 B parameters, 2.52 GB; needs the generator without the
# test-model size cap, branch scale-io). SCALE_ORT=0 skips onnxruntime (it
# holds ~10 GB for this model); SCALE_ONNXSLM=path runs another onnxslm build
# (a "before" binary).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
model="${1:-/tmp/onnxslm-scale/tinyllama1b-fp16.onnx}"
work="${2:-$(mktemp -d)}"
mkdir -p "$work"
say() { printf '== %s\n' "$*" >&2; }
[ -x /usr/bin/time ] || { say "installing time"; apt-get install -y -qq time >/dev/null; }

if [ ! -f "$model" ]; then
	say "making $model"
	mkdir -p "$(dirname "$model")"
	(cd "$repo" && go run ./internal/cmd/genmodel -layers 22 -d 2048 -heads 32 -ffn 5632 -vocab 32000 -fp16 "$model")
fi
onnxslm="${SCALE_ONNXSLM:-}"
if [ -z "$onnxslm" ]; then
	onnxslm="$work/onnxslm"
	(cd "$repo" && go build -o "$onnxslm" ./cmd/onnxslm)
fi
weights=$(( $(stat -c %s "$model") + $(stat -c %s "$model.data" 2>/dev/null || echo 0) ))

# 4 rows of 128 ids below the vocabulary, seeded; as text and as .npy.
python3 - "$work" <<'EOF'
import random, struct, sys
work = sys.argv[1]
r = random.Random(2)
rows = [[r.randrange(32000) for _ in range(128)] for _ in range(4)]
open(f"{work}/eval.txt", "w").write("".join(" ".join(map(str, row)) + "\n" for row in rows))
hdr = "{'descr': '<i8', 'fortran_order': False, 'shape': (%d, %d), }" % (len(rows), len(rows[0]))
hdr += " " * (64 - (10 + len(hdr) + 1) % 64) + "\n"
with open(f"{work}/ids.npy", "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode())
    for row in rows:
        f.write(struct.pack("<%dq" % len(row), *row))
EOF

step() { # NAME CMD...: run under time -v, report
	local name=$1
	shift
	local before after
	before=$(cut -d' ' -f1-3 /proc/loadavg)
	/usr/bin/time -v "$@" >"$work/$name.out" 2>"$work/$name.time"
	after=$(cut -d' ' -f1-3 /proc/loadavg)
	awk -v name="$name" -v w="$weights" -v b="$before" -v a="$after" '
		/Elapsed/ {n = split($NF, t, ":"); wall = (n == 3) ? t[1]*3600 + t[2]*60 + t[3] : t[1]*60 + t[2]}
		/User time/ {u = $NF} /System time/ {s = $NF}
		/Maximum resident/ {rss = $NF * 1024}
		END {printf "%-8s wall %.1f s (user %.1f, system %.1f)  peak RSS %.0f MiB = %.2f× the %.0f MiB file  load %s -> %s\n",
			name, wall, u, s, rss / 1048576, rss / w, w / 1048576, b, a}' "$work/$name.time"
}

step eval "$onnxslm" eval --json "$model" --tokens "$work/eval.txt"
grep -o '"mean_nll": [0-9.]*' "$work/eval.out"

if [ "${SCALE_ORT:-1}" != 0 ]; then
	[ -f "$repo/tools/judges/node_modules/onnxruntime-node/package.json" ] || bash "$repo/.ci/install-judges.sh"
	mkdir -p "$work/ort"
	cat >"$work/ort_request.json" <<EOF
{"model": "$model", "inputs": [{"name": "input_ids", "file": "$work/ids.npy"}], "outputs": ["logits"], "out_dir": "$work/ort", "intra_op_threads": 2}
EOF
	step ort node "$repo/tools/judges/ort_run.js" "$work/ort_request.json"
	# onnxruntime's mean next-token NLL from its logits (pure Python: no numpy here).
	python3 - "$work" <<'EOF'
import array, ast, math, sys
work = sys.argv[1]
def npy(path, code):
    b = open(path, "rb").read()
    n = int.from_bytes(b[8:10], "little")
    h = ast.literal_eval(b[10:10 + n].decode())
    a = array.array(code)
    a.frombytes(b[10 + n:])
    return h["shape"], a
(B, T, V), lg = npy(f"{work}/ort/out0.npy", "f")
_, ids = npy(f"{work}/ids.npy", "q")
tot = 0.0
for b in range(B):
    for t in range(T - 1):
        row = lg[(b * T + t) * V:(b * T + t + 1) * V]
        m = max(row)
        tot += math.log(sum(math.exp(v - m) for v in row)) + m - row[ids[b * T + t + 1]]
print('"ort_mean_nll": %.6f' % (tot / (B * (T - 1))))
EOF
fi
say "outputs in $work"
