package modeldiff

import (
	"reflect"
	"testing"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/rewrite"
	"github.com/onnxslm/onnxslm/slm"
)

// TestWidthChanges: the diff lists each layer whose MLP lost channels or
// whose attention lost heads, read from the layers when every layer keeps
// one width, and from B's metadata when widths differ by layer (not a stack
// for discovery); after a merge the layers are matched through kept_from.
func TestWidthChanges(t *testing.T) {
	m, st := testmodel.Generated(t, modelgen.Config{Arch: modelgen.Llama, Layers: 4, Hidden: 16, Heads: 2, FFN: 24, Seed: 3})
	merged, err := rewrite.Merge(m, st, rewrite.Plan{Rule: rewrite.Paper, Windows: []rewrite.Window{{Window: slm.Window{Low: 1, High: 2}}}}, rewrite.Options{Meta: rewrite.Meta{Version: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	sm, err := discover.Find(merged.Model)
	if err != nil {
		t.Fatal(err)
	}
	keep := func(n int) []int {
		k := make([]int, n)
		for i := range k {
			k[i] = i
		}
		return k
	}
	for _, tc := range []struct {
		name   string
		widths []int // per layer of the merged model
		heads  int   // query heads kept in every layer (0: all)
		source string
		want   []LayerWidth
	}{
		{"one width", []int{20, 20, 20}, 0, "layers", []LayerWidth{{0, 0, 24, 20, 2, 2}, {1, 1, 24, 20, 2, 2}, {2, 3, 24, 20, 2, 2}}},
		{"widths by layer", []int{24, 10, 17}, 0, "metadata", []LayerWidth{{1, 1, 24, 10, 2, 2}, {2, 3, 24, 17, 2, 2}}},
		{"heads", []int{24, 24, 24}, 1, "layers", []LayerWidth{{0, 0, 24, 24, 2, 1}, {1, 1, 24, 24, 2, 1}, {2, 3, 24, 24, 2, 1}}},
		{"heads and widths by layer", []int{24, 10, 17}, 1, "metadata", []LayerWidth{{0, 0, 24, 24, 2, 1}, {1, 1, 24, 10, 2, 1}, {2, 3, 24, 17, 2, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var plan rewrite.WidthPlan
			for i, w := range tc.widths {
				plan.MLP = append(plan.MLP, rewrite.MLPChannels{Layer: i, Keep: keep(w)})
				if tc.heads > 0 {
					plan.Heads = append(plan.Heads, rewrite.AttnHeads{Layer: i, Keep: keep(tc.heads)})
				}
			}
			res, err := rewrite.Width(merged.Model, sm, plan, rewrite.Options{Meta: rewrite.Meta{Version: "test"}})
			if err != nil {
				t.Fatal(err)
			}
			d, err := Compare(&onnx.Model{Proto: m}, &onnx.Model{Proto: res.Model})
			if err != nil {
				t.Fatal(err)
			}
			if d.Widths == nil {
				t.Fatal("no width changes found")
			}
			if d.Widths.Source != tc.source || !reflect.DeepEqual(d.Widths.Layers, tc.want) {
				t.Errorf("widths %+v from %s, want %+v from %s", d.Widths.Layers, d.Widths.Source, tc.want, tc.source)
			}
		})
	}
	// No width change, no section.
	d, err := Compare(&onnx.Model{Proto: m}, &onnx.Model{Proto: merged.Model})
	if err != nil {
		t.Fatal(err)
	}
	if d.Widths != nil {
		t.Errorf("a merge without width changes: widths %+v", d.Widths)
	}
}
