package prune

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/merged"
	"github.com/onnxslm/onnxslm/runtime"
)

// TestPruneMerged: each method prunes optimum's merged decoder into a
// merged decoder of fewer layers, one stack in both branches, with the KV
// names renumbered in both branches and the graph's interface.
func TestPruneMerged(t *testing.T) {
	c := modelgen.Config{Arch: modelgen.Llama, Layers: 4, Hidden: 32, Heads: 4, KVHeads: 2, Seed: 9, KVCache: true, AttentionMask: true}
	m, err := modelgen.BuildOptimumMerged(c)
	if err != nil {
		t.Fatal(err)
	}
	rows := randomRows(6, 16, 3)
	for _, method := range []Method{Auto, SLM, ShortGPT} {
		t.Run(string(method), func(t *testing.T) {
			out, err := Run(context.Background(), m, Options{Method: method, Calibration: rows, Layers: 3, Batch: 3})
			if err != nil {
				t.Fatal(err)
			}
			if out.Report.LayersAfter != 3 || !merged.Is(out.Model) {
				t.Fatalf("%d layers, merged %v", out.Report.LayersAfter, merged.Is(out.Model))
			}
			if out.Report.ParametersAfter >= out.Report.ParametersBefore {
				t.Errorf("parameters %d → %d", out.Report.ParametersBefore, out.Report.ParametersAfter)
			}
			p, err := merged.Split(out.Model)
			if err != nil {
				t.Fatal(err)
			}
			br, err := discover.FindMerged(p)
			if err != nil {
				t.Fatal(err)
			}
			if br.NoPast.NumLayers() != 3 {
				t.Errorf("%d layers without past", br.NoPast.NumLayers())
			}
			var ins, outs []string
			for _, vi := range out.Model.Graph.Input {
				ins = append(ins, vi.GetName())
			}
			for _, vi := range out.Model.Graph.Output {
				outs = append(outs, vi.GetName())
			}
			wantIn := "input_ids attention_mask past_key_values.0.key past_key_values.0.value past_key_values.1.key past_key_values.1.value past_key_values.2.key past_key_values.2.value use_cache_branch"
			wantOut := "logits present.0.key present.0.value present.1.key present.1.value present.2.key present.2.value"
			if strings.Join(ins, " ") != wantIn || strings.Join(outs, " ") != wantOut {
				t.Errorf("interface\n %v\n %v\nwant\n %s\n %s", ins, outs, wantIn, wantOut)
			}
			for _, h := range []struct {
				name string
				l    []discover.Layer
			}{{"no past", br.NoPast.Layers}, {"with past", br.WithPast.Layers}} {
				for i, l := range h.l {
					got := slices.Sorted(slices.Values(l.Present)) // structural order
					if fmt.Sprint(got) != fmt.Sprintf("[present.%d.key present.%d.value]", i, i) {
						t.Errorf("%s: layer %d presents %v", h.name, i, l.Present)
					}
				}
			}
			// rewrite.MergeBranches' test runs both branches of such a
			// model; cmd/onnxslm's TestDeployedLayoutsPrune has onnxruntime
			// run them.
			if _, err := runtime.New(out.Model, runtime.Options{}); err != nil {
				t.Fatal(err)
			}
		})
	}
	if _, err := Run(context.Background(), m, Options{Calibration: rows, Layers: 3, Recover: true}); err == nil || !strings.Contains(err.Error(), "merged decoder") {
		t.Errorf("Recover: error %v, want a refusal", err)
	}
}
