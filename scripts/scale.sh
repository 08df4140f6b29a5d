#!/usr/bin/env bash
# scale.sh: onnxslm end to end on a ~370M-parameter random Llama (1.5 GB of
# external data), with wall time and peak RSS of every step. Not run in CI.
#
#   bash scripts/scale.sh [WORKDIR]        # default /tmp/onnxslm-scale
#
# Steps: install Debian's python3-torch if missing; build the model with
# ../shared/tools/biglm/make_random_llama.py (kept between runs); build onnxslm;
# make 4×128 random token ids (calibration) and another 4×128 (evaluation);
# then, each under /usr/bin/time -v:
#   inspect   onnxslm inspect --json MODEL
#   eval      onnxslm eval --json MODEL --tokens eval.txt
#   prune     onnxslm --method ${SCALE_METHOD:-auto} --prune-ratio 0.25 --calib calib.txt MODEL OUT --report report.json
#   eval-out  onnxslm eval --json OUT --tokens eval.txt
#   analyze   onnxslm analyze --json --calib calib.txt MODEL --png cka.png
#   ort-out   onnxruntime-node (tools/judges/ort_run.js) runs OUT on eval.txt
# and checks that onnxruntime's mean NLL on OUT equals onnxslm eval's within 1e-4
# (relative). The bar: every onnxslm step's peak RSS stays under 2× the weights.
# Prints a Markdown table (also in WORKDIR/scale.md) for docs/SCALE.md.
#
# Environment: SCALE_LAYERS, SCALE_D, SCALE_FFN, SCALE_VOCAB (model shape; the
# defaults are biglm's), SCALE_THREADS (onnxslm --threads; default all cores),
# ONNXSLM_PYTHON (default /usr/bin/python3).
#
# SCALE_MODEL picks the model:
#   biglm        (default) the 374M float32 Llama above, made by PyTorch;
#   tinyllama1b  TinyLlama's shape in float16 without PyTorch (internal/cmd/genmodel,
#                streamed): 22 layers, d 2048, 32 heads (SCALE_KV_HEADS: 32), FFN 5632,
#                vocab 32000; 1.26 B parameters, 2.52 GB of external data;
#   llama7b      a 7B shape in float16: 32 layers, d 4096, 32 heads / 8 KV heads,
#                FFN 11008 (SCALE_FFN=14336 for Mistral's), vocab 32000; 5.9 B
#                parameters, 11.9 GB (7.2 B, 14.5 GB with FFN 14336).
# SCALE_METHOD (default auto) and SCALE_CALIB=builtin set the prune step's method and
# calibration set. SCALE_DTYPE (float16 or bfloat16) and SCALE_KV_HEADS override the generated
# models' storage and KV heads. For the generated models the script stops after
# the build and inspect steps unless SCALE_FULL=1 (eval and prune at that size
# wait for the layer-major runtime of issue 13).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-/tmp/onnxslm-scale}"
python="${ONNXSLM_PYTHON:-/usr/bin/python3}"
biglm="$repo/../shared/tools/biglm/make_random_llama.py"
mkdir -p "$work"
cd "$work"

say() { printf '== %s\n' "$*" >&2; }

# --- prerequisites -------------------------------------------------------------
[ -x /usr/bin/time ] || { say "installing time"; apt-get install -y -qq time >/dev/null; }
kind="${SCALE_MODEL:-biglm}"
case "$kind" in
biglm | tinyllama1b | llama7b) ;;
*) echo "scale.sh: SCALE_MODEL=$kind: want biglm, tinyllama1b or llama7b" >&2; exit 2 ;;
esac
generated=0
[ "$kind" != biglm ] && generated=1
if [ "$generated" -eq 0 ] && ! "$python" -c 'import torch, onnx, numpy' 2>/dev/null; then
	say "installing python3-torch python3-onnx python3-numpy (large; Debian packages)"
	sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-torch python3-onnx python3-numpy
fi
[ "$generated" -eq 1 ] || [ -f "$biglm" ] || { echo "scale.sh: $biglm not found (../shared/tools/biglm)" >&2; exit 1; }

say "go build onnxslm"
(cd "$repo" && go build -o "$work/onnxslm" ./cmd/onnxslm)
onnxslm="$work/onnxslm"
threads=()
[ -n "${SCALE_THREADS:-}" ] && threads=(--threads "$SCALE_THREADS")

# --- the model ----------------------------------------------------------------
if [ "$generated" -eq 1 ]; then
	# Streamed by internal/cmd/genmodel: memory is about the largest tensor.
	say "go build genmodel"
	(cd "$repo" && go build -o "$work/genmodel" ./internal/cmd/genmodel)
	dtype="${SCALE_DTYPE:-float16}"
	case "$kind" in
	tinyllama1b) gen=(-layers "${SCALE_LAYERS:-22}" -d "${SCALE_D:-2048}" -heads 32 -kv-heads "${SCALE_KV_HEADS:-32}" -ffn "${SCALE_FFN:-5632}") ;;
	llama7b) gen=(-layers "${SCALE_LAYERS:-32}" -d "${SCALE_D:-4096}" -heads 32 -kv-heads "${SCALE_KV_HEADS:-8}" -ffn "${SCALE_FFN:-11008}") ;;
	esac
	gen+=(-vocab "${SCALE_VOCAB:-32000}" -dtype "$dtype")
	model="$work/$kind-$dtype.onnx"
	spec="${gen[*]}"
	if [ ! -f "$model" ] || [ ! -f "$model.data" ] || [ "$(cat "$model.gen" 2>/dev/null)" != "$spec" ]; then
		say "generating $kind (genmodel $spec)"
		rm -f "$model" "$model.data" "$model.gen"
		/usr/bin/time -v -o "$model.time" "$work/genmodel" "${gen[@]}" "$model"
		echo "$spec" >"$model.gen"
	fi
	# The build step of the table is this model's generation.
	cp "$model.time" "$work/build.time" 2>/dev/null || rm -f "$work/build.time"
fi
if [ "$generated" -eq 0 ]; then
	model="$work/llama374m.onnx"
	shape=()
	[ -n "${SCALE_LAYERS:-}" ] && shape+=(--layers "$SCALE_LAYERS")
	[ -n "${SCALE_D:-}" ] && shape+=(--d "$SCALE_D")
	[ -n "${SCALE_FFN:-}" ] && shape+=(--ffn "$SCALE_FFN")
	[ -n "${SCALE_VOCAB:-}" ] && shape+=(--vocab "$SCALE_VOCAB")
	if [ ! -f "$model" ] || [ ! -f "$model.data" ] || [ "${#shape[@]}" -gt 0 ]; then
		say "building the random Llama (make_random_llama.py ${shape[*]:-})"
		/usr/bin/time -v -o "$work/build.time" "$python" "$biglm" "$model" "${shape[@]}" >"$work/build.json"
	fi
	vocab="$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["config"]["vocab_size"])' "$work/build.json" 2>/dev/null ||
			"$onnxslm" inspect --json "$model" | "$python" -c 'import json,sys; print(json.load(sys.stdin)["outputs"][0]["shape"][-1])')"
else
	vocab="${SCALE_VOCAB:-32000}"
fi
weights=$(($(stat -c %s "$model") + $(stat -c %s "$model.data")))

# --- token sets: random ids, seeded ---------------------------------------------
tokens() { # SEED FILE: 4 rows of 128 ids below $vocab
	awk -v seed="$1" -v vocab="$vocab" 'BEGIN { srand(seed); for (r = 0; r < 4; r++) { line = ""; for (c = 0; c < 128; c++) line = line (c ? " " : "") int(rand() * vocab); print line } }' >"$2"
}
tokens 1 "$work/calib.txt"
tokens 2 "$work/eval.txt"

# --- the steps ------------------------------------------------------------------
out="${model%.onnx}-pruned.onnx"
rm -f "$out" "$out.data" "$work/over.txt"
steps=()
load0="$(cut -d' ' -f1-3 /proc/loadavg)"
run() { # NAME CMD...: run under /usr/bin/time -v, keep stdout in NAME.out
	local name="$1"; shift
	say "$name: $*"
	/usr/bin/time -v -o "$work/$name.time" "$@" >"$work/$name.out" 2>"$work/$name.err" || {
		echo "scale.sh: $name failed:" >&2; cat "$work/$name.err" >&2; exit 1; }
	steps+=("$name")
}
ort_ok=0
run inspect "$onnxslm" inspect --json "$model"
full=1
[ "$generated" -eq 1 ] && [ "${SCALE_FULL:-0}" != 1 ] && full=0
if [ "$full" -eq 1 ]; then
if [ ! -f "$repo/tools/judges/node_modules/onnxruntime-node/package.json" ]; then
	say "installing the judges (onnxruntime-node)"
	bash "$repo/.ci/install-judges.sh"
fi
run eval "$onnxslm" eval --json "${threads[@]}" "$model" --tokens "$work/eval.txt"
# SCALE_METHOD picks the pruning method (default: the CLI's default, auto).
# SCALE_CALIB=builtin calibrates on the built-in set (as `onnxslm in.onnx out.onnx`
# does) instead of calib.txt: issue 13's default-prune figure.
calib=(--calib "$work/calib.txt")
[ "${SCALE_CALIB:-}" = builtin ] && calib=()
run prune "$onnxslm" --method "${SCALE_METHOD:-auto}" --prune-ratio 0.25 "${calib[@]}" "${threads[@]}" "$model" "$out" --report "$work/report.json"
run eval-out "$onnxslm" eval --json "${threads[@]}" "$out" --tokens "$work/eval.txt"
run analyze "$onnxslm" analyze -q --json "${threads[@]}" --calib "$work/calib.txt" "$model" --png "$work/cka.png"

# onnxruntime on the pruned model: the same tokens, the mean NLL compared.
"$python" - "$work" <<'EOF'
import json, sys, numpy as np
work = sys.argv[1]
ids = np.loadtxt(f"{work}/eval.txt", dtype=np.int64, ndmin=2)
np.save(f"{work}/ort_input_ids.npy", ids)
np.save(f"{work}/ort_attention_mask.npy", np.ones_like(ids))
np.save(f"{work}/ort_position_ids.npy", np.broadcast_to(np.arange(ids.shape[1], dtype=np.int64), ids.shape).copy())
EOF
mkdir -p "$work/ort"
inputs='[{"name":"input_ids","file":"'"$work"'/ort_input_ids.npy"}'
for extra in attention_mask position_ids; do
	if "$onnxslm" inspect --json "$out" | "$python" -c 'import json,sys; sys.exit(0 if sys.argv[1] in [i["name"] for i in json.load(sys.stdin)["inputs"]] else 1)' "$extra"; then
		inputs="$inputs"',{"name":"'"$extra"'","file":"'"$work"'/ort_'"$extra"'.npy"}'
	fi
done
cat >"$work/ort_request.json" <<EOF
{"model": "$out", "inputs": $inputs], "outputs": ["logits"], "out_dir": "$work/ort", "intra_op_threads": 2}
EOF
run ort-out node "$repo/tools/judges/ort_run.js" "$work/ort_request.json"
"$python" - "$work" <<'EOF' >"$work/ort_check.txt" || ort_ok=1
import json, sys, numpy as np
work = sys.argv[1]
ids = np.load(f"{work}/ort_input_ids.npy")
logits = np.load(f"{work}/ort/out0.npy").astype(np.float64)
assert np.isfinite(logits).all(), "onnxruntime logits are not finite"
lse = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
pred = logits[:, :-1, :]
nll = lse[:, :-1] - np.take_along_axis(pred, ids[:, 1:, None], -1)[..., 0]
ort = float(nll.mean())
go = json.load(open(f"{work}/eval-out.out"))["mean_nll"]
rel = abs(ort - go) / abs(go)
print(f"mean NLL: onnxruntime {ort:.6f}, onnxslm eval {go:.6f}, relative difference {rel:.2e}")
sys.exit(0 if rel <= 1e-4 else 1)
EOF
cat "$work/ort_check.txt" >&2
fi # full

# --- the table ------------------------------------------------------------------
field() { # FILE KEY -> value of "KEY: value" in /usr/bin/time -v output
	sed -n "s/^[[:space:]]*$2: //p" "$1" | head -n1
}
secs() { # h:mm:ss or m:ss.ss -> seconds
	awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.1f", s }' <<<"$1"
}
over=0
{
	printf 'Model: %s (%s bytes of weights with its data file, vocab %s); %s, %s CPUs, onnxslm %s.\n\n' \
		"$(basename "$model")" "$weights" "$vocab" "$(uname -srm)" "$(nproc)" "$("$onnxslm" --version | awk '{print $2}')"
	printf 'Load average before the steps: %s; after: %s.\n\n' "$load0" "$(cut -d' ' -f1-3 /proc/loadavg)"
	printf '| step | wall s | peak RSS MiB | peak RSS / weights |\n|---|---|---|---|\n'
	for s in build "${steps[@]}"; do
		[ -f "$work/$s.time" ] || continue
		rss_kib="$(field "$work/$s.time" 'Maximum resident set size (kbytes)')"
		wall="$(secs "$(field "$work/$s.time" 'Elapsed (wall clock) time (h:mm:ss or m:ss)')")"
		ratio="$(awk -v r="$rss_kib" -v w="$weights" 'BEGIN { printf "%.2f", r * 1024 / w }')"
		printf '| %s | %s | %d | %s |\n' "$s" "$wall" "$((rss_kib / 1024))" "$ratio"
		case "$s" in inspect | eval | prune | eval-out | analyze)
			awk -v x="$ratio" 'BEGIN { exit !(x >= 2) }' && echo "$s" >>"$work/over.txt" ;;
		esac
	done
	printf '\n'
	[ "$full" -eq 1 ] && "$python" - "$work" <<'EOF'
import json, sys
work = sys.argv[1]
r = json.load(open(f"{work}/report.json"))
e0 = json.load(open(f"{work}/eval.out"))
e1 = json.load(open(f"{work}/eval-out.out"))
print(f"Prune: {r['layers_before']} → {r['layers_after']} layers, windows {r.get('windows')}, removed {r['removed_layers']}, "
      f"similarity {r['similarity']:.4f}, {r['candidates_evaluated']} candidates in {r['candidate_seconds']:.1f} s; "
      f"parameters {r['parameters_before']:,} → {r['parameters_after']:,}.")
print(f"Perplexity on 4×128 random ids: {e0['perplexity']:.1f} before, {e1['perplexity']:.1f} after "
      f"(random weights: near the vocabulary size); eval speed {e0['tokens_per_second']:.0f} tokens/s before.")
EOF
	if [ "$full" -eq 1 ]; then
		cat "$work/ort_check.txt"
	else
		printf 'Generated model: build and inspect only (SCALE_FULL=1 runs eval, prune and onnxruntime too).\n'
	fi
} >"$work/scale.md"
cat "$work/scale.md"
[ -s "$work/over.txt" ] && over=1
if [ "$ort_ok" -ne 0 ]; then
	echo "scale.sh: onnxruntime disagrees with onnxslm eval on the pruned model" >&2
	exit 1
fi
if [ "$over" -ne 0 ]; then
	echo "scale.sh: a step's peak RSS reached 2× the weights" >&2
	exit 1
fi
