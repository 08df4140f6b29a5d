package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/internal/judge"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// dynamoConfig is one torch dynamo export of the small Llama.
type dynamoConfig struct {
	name string
	d    modelgen.DynamoConfig
}

// dynamoConfigs are the torch dynamo exports: opset 18 decomposed, opset 23
// RMSNormalization/Attention, dynamo_export's local functions.
func dynamoConfigs() []dynamoConfig {
	base := modelgen.DynamoConfig{Layers: 4, Hidden: 64, Heads: 4, KVHeads: 2, Seed: 3}
	o23, fn := base, base
	o23.Opset, fn.Functions = 23, true
	return []dynamoConfig{{"opset18", base}, {"opset23", o23}, {"functions", fn}}
}

// dynamoLayouts are the torch dynamo exports as deployed layouts.
func dynamoLayouts() []deployedLayout {
	var ls []deployedLayout
	for _, v := range dynamoConfigs() {
		d := v.d
		ls = append(ls, deployedLayout{name: "dynamo-" + v.name, twin: d.Twin(),
			write: writeModel("model.onnx", inlineData, func() (*pb.ModelProto, error) { return modelgen.BuildDynamo(d) })})
	}
	return ls
}

// refusal is how a layout refuses a width case: the exit status and a
// pattern its message must match (naming the op or layout).
type refusal struct {
	code    int
	message string
}

// widthRefusals: what each layout refuses, by case. Quantized weights
// (MatMulNBits, MatMulInteger) are not sliced; the fused attention ops'
// num_heads are not rewritten; dynamo's attention splits heads with
// computed shapes; the merged decoder's two branches are not width-pruned.
var widthRefusals = func() map[string]map[string]refusal {
	quant := func(op, storage string) map[string]refusal {
		r := refusal{1, `layer 0: the (gate|up) projection is a ` + op + ` of ` + storage + ` weights: width pruning of quantized layouts is not supported`}
		return map[string]refusal{"channels": r, "mixed": r, "heads": r}
	}
	merged := refusal{2, `--params-ratio [0-9.]+: is not applied to optimum's merged decoder yet`}
	fused := func(op string) refusal {
		return refusal{1, `width heads: layer 0: heads of a fused ` + op + ` are not pruned`}
	}
	unknownHeads := refusal{1, `width heads: layer 0: the attention's head counts are not known`}
	return map[string]map[string]refusal{
		"genai-fp32":       {"heads": fused("GroupQueryAttention")},
		"genai-fp16":       {"heads": fused("GroupQueryAttention")},
		"genai-int4":       quant("MatMulNBits", "nbits"),
		"genai-int8":       quant("MatMulNBits", "nbits"),
		"txjs-q4":          quant("MatMulNBits", "nbits"),
		"txjs-q4f16":       quant("MatMulNBits", "nbits"),
		"txjs-quantized":   quant("MatMulInteger", "int8"),
		"optimum-merged":   {"channels": merged, "mixed": merged, "heads": merged},
		"ortopt-gpt2":      {"heads": fused("Attention")},
		"dynamo-opset18":   {"heads": unknownHeads},
		"dynamo-functions": {"heads": unknownHeads},
		"dynamo-opset23":   {"heads": unknownHeads},
	}
}()

// TestDeployedLayoutsWidth: for each deployed layout, width pruning (MLP
// channels only; depth and width together; one KV group of heads) either
// writes a file of the same ops and domains (but for the Add of FLAP's
// compensation where the down projection had no bias; dynamo_export's
// functions written inlined, said on stderr) and the same storage, smaller
// than the input, that onnxruntime runs with and without a past at the
// perplexity eval reports (0.05 %), or is refused at once with a message
// naming the op or layout it cannot handle, and nothing written.
func TestDeployedLayoutsWidth(t *testing.T) {
	testenv.Long(t, "width-prunes fifteen models three ways")
	ort := judge.ORT(t)
	rows, tokens := evalTokens(t)
	fixed := []string{"--width-score", "fluct", "--width-alloc", "layer"}
	for _, l := range append(deployedLayouts(), dynamoLayouts()...) {
		group := 1 // query heads of one KV group
		if l.twin.KVHeads > 0 {
			group = l.twin.Heads / l.twin.KVHeads
		}
		for _, c := range []struct {
			name string
			args []string
		}{
			{"channels", []string{"--params-ratio", "0.25", "--width-ratio", "1", "--width-heads", "0"}},
			// 0.3: one layer of four and a share of width.
			{"mixed", []string{"--params-ratio", "0.3", "--width-ratio", "0.25", "--width-heads", "0"}},
			{"heads", []string{"--params-ratio", "0.25", "--width-ratio", "1", "--width-heads", strconv.Itoa(group)}},
		} {
			t.Run(l.name+"/"+c.name, func(t *testing.T) {
				in, outDir := t.TempDir(), t.TempDir()
				model, err := l.write(in)
				if err != nil {
					t.Fatal(err)
				}
				out := filepath.Join(outDir, "model.onnx")
				args := append(append([]string{"prune", model, out, "-q", "--json"}, c.args...), fixed...)
				code, stdout, stderr := runCLI(t, args...)
				if r, refused := widthRefusals[l.name][c.name]; refused {
					if code != r.code || !regexp.MustCompile(r.message).MatchString(stderr) {
						t.Errorf("exit %d, want %d with a message matching %q: %s", code, r.code, r.message, stderr)
					}
					if left, _ := os.ReadDir(outDir); len(left) != 0 {
						t.Errorf("refused, but wrote %v", left)
					}
					t.Logf("refused: %s", strings.TrimSpace(stderr))
					return
				}
				if code != 0 {
					t.Fatalf("prune: exit %d: %s", code, stderr)
				}
				checkWidthReport(t, l.name, c.name, stdout)
				ref := model
				if l.name == "dynamo-functions" {
					if !strings.Contains(stderr, "writing the graph flat (functions inlined)") {
						t.Errorf("functions: stderr does not say the graph is written flat: %s", stderr)
					}
					ref = inlinedCopy(t, model)
				}
				a, b := opSet(t, ref), opSet(t, out)
				if added := strings.Join(setMinus(b, a), " "); len(setMinus(a, b)) != 0 || (added != "" && added != ":Add") {
					t.Errorf("ops changed (beyond the compensation's Add):\n in  %v\n out %v", a, b)
				} else if added != "" {
					t.Logf("FLAP's compensation added an Add (the down projection had no bias)")
				}
				if a, b := isMerged(t, model), isMerged(t, out); a != b {
					t.Errorf("merged decoder in %v, out %v", a, b)
				}
				if a, b := storage(t, model), storage(t, out); a != b {
					t.Errorf("storage changed:\n in  %s\n out %s", a, b)
				}
				if a, b := dirBytes(t, in), dirBytes(t, outDir); b >= a {
					t.Errorf("output %d bytes, input %d: nothing removed", b, a)
				}
				before, after := judgeDeployed(t, ort, l, model, rows, tokens), judgeDeployed(t, ort, l, out, rows, tokens)
				t.Logf("perplexity %.4f → %.4f", before, after)
			})
		}
	}
}

// checkWidthReport checks prune's JSON report of a width case: every kept
// layer lost MLP channels (channels) or one KV group of heads (heads), and on
// the transformer optimizer's GPT-2, whose down projection's bias is added
// by the next SkipLayerNormalization, FLAP's compensation went into that bias
// (no bias added).
func checkWidthReport(t *testing.T, layout, kase, stdout string) {
	t.Helper()
	var r struct {
		Width struct {
			Layers []struct {
				From          int
				MLPBefore     int  `json:"mlp_before"`
				MLPAfter      int  `json:"mlp_after"`
				Compensated   bool `json:"compensated"`
				AddedBias     bool `json:"added_bias"`
				KVHeadsBefore int  `json:"kv_heads_before"`
				KVHeadsAfter  int  `json:"kv_heads_after"`
			} `json:"layers"`
		} `json:"width"`
	}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("prune --json: %v\n%s", err, stdout)
	}
	if len(r.Width.Layers) == 0 {
		t.Fatalf("prune --json: no width layers reported: %s", stdout)
	}
	for _, w := range r.Width.Layers {
		switch {
		case kase == "channels" && !(w.MLPAfter < w.MLPBefore && w.Compensated):
			t.Errorf("layer %d: MLP %d → %d channels, compensated %v: want fewer, compensated", w.From, w.MLPBefore, w.MLPAfter, w.Compensated)
		case kase == "heads" && w.KVHeadsAfter != w.KVHeadsBefore-1:
			t.Errorf("layer %d: KV heads %d → %d, want one fewer", w.From, w.KVHeadsBefore, w.KVHeadsAfter)
		case layout == "ortopt-gpt2" && w.Compensated && w.AddedBias:
			t.Errorf("layer %d: compensation added a bias; want it in the skip norm's", w.From)
		}
	}
}

// setMinus is the elements of a not in b.
func setMinus(a, b []string) []string {
	var d []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			d = append(d, x)
		}
	}
	return d
}

// inlinedCopy writes model path with its local functions inlined.
func inlinedCopy(t *testing.T, path string) string {
	t.Helper()
	flat, err := onnx.InlineFunctions(testmodel.Load(t, path).Proto)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "inlined.onnx")
	if err := onnx.Save(flat, p, inlineData); err != nil {
		t.Fatal(err)
	}
	return p
}

// dirBytes is the size of the files in dir.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range es {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}
