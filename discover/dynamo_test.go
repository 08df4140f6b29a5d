package discover_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// dynamoModels are torch dynamo exports (modelgen.BuildDynamo): flat opset
// 18 and 23 graphs, and dynamo_export's local functions as the load step
// leaves them (inlined).
func dynamoModels(t *testing.T) map[string]*pb.ModelProto {
	t.Helper()
	base := modelgen.DynamoConfig{Layers: 3, Hidden: 64, Heads: 4, KVHeads: 2, FFN: 96, Seed: 5}
	out := map[string]*pb.ModelProto{}
	for name, f := range map[string]func(*modelgen.DynamoConfig){
		"opset18":     func(*modelgen.DynamoConfig) {},
		"opset18-mha": func(d *modelgen.DynamoConfig) { d.KVHeads = 4 },
		"opset23":     func(d *modelgen.DynamoConfig) { d.Opset = 23 },
		"functions":   func(d *modelgen.DynamoConfig) { d.Functions = true },
	} {
		d := base
		f(&d)
		m, err := modelgen.BuildDynamo(d)
		if err != nil {
			t.Fatal(err)
		}
		if m, err = onnx.InlineFunctions(m); err != nil {
			t.Fatal(err)
		}
		out[name] = m
	}
	return out
}

// TestDynamoLayouts: the layers of the dynamo exports are found by
// structure, with the same slots as the plain twin's (seven projections,
// two norms, the KV cache), whatever the names (val_N weights, FX value
// names) and the nodes the optimizer's CSE left in layer 0 for all layers.
func TestDynamoLayouts(t *testing.T) {
	for name, m := range dynamoModels(t) {
		t.Run(name, func(t *testing.T) {
			s := testmodel.Find(t, m)
			if s.NumLayers() != 3 {
				t.Fatalf("%d layers, want 3", s.NumLayers())
			}
			for _, l := range s.Layers {
				if len(l.Projections) != 7 || len(l.Norms) != 2 {
					t.Errorf("layer %d: %d projections, %d norms; want 7 and 2", l.Index, len(l.Projections), len(l.Norms))
				}
				want := []string{fmt.Sprintf("past_key_values.%d.key", l.Index), fmt.Sprintf("past_key_values.%d.value", l.Index)}
				if got := slices.Sorted(slices.Values(l.Past)); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("layer %d past %v, want %v", l.Index, l.Past, want)
				}
				for _, p := range l.Projections {
					if w := l.Params[p.Matrix()].Name; !strings.HasPrefix(w, "val_") {
						t.Errorf("layer %d: projection weight %q, want a folded val_N", l.Index, w)
					}
				}
			}
			if s.LMHeadWeight == "" || s.Logits != "logits" {
				t.Errorf("head %q logits %q", s.LMHeadWeight, s.Logits)
			}
		})
	}
}

func TestDynamoSameAfterRenaming(t *testing.T) {
	for name, m := range dynamoModels(t) {
		for _, seed := range []uint64{0, 7} {
			t.Run(fmt.Sprintf("%s/seed%d", name, seed), func(t *testing.T) {
				sameStackAfterRenaming(t, m, seed)
			})
		}
	}
}
