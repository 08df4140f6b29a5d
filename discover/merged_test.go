package discover_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/merged"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// TestFindMerged: the layers of both branches of optimum's merged decoder,
// the same stack over the shared weights; the no-past layers produce their
// present.* outputs and read no past.
func TestFindMerged(t *testing.T) {
	for _, tw := range []bool{false, true} {
		c := modelgen.Config{Arch: modelgen.Llama, Layers: 3, Hidden: 32, Heads: 4, KVHeads: 2, Seed: 5,
			KVCache: true, AttentionMask: true, TransposedWeights: tw}
		_, p := testmodel.MergedPair(t, c)
		br, err := discover.FindMerged(p)
		if err != nil {
			t.Fatal(err)
		}
		a, b := br.NoPast, br.WithPast
		if a.NumLayers() != 3 || b.NumLayers() != 3 {
			t.Fatalf("%d and %d layers, want 3", a.NumLayers(), b.NumLayers())
		}
		for i := range a.Layers {
			if len(a.Layers[i].Past) != 0 || len(b.Layers[i].Past) != 2 || len(a.Layers[i].Present) != 2 || len(b.Layers[i].Present) != 2 {
				t.Errorf("layer %d: past %v / %v, present %v / %v", i, a.Layers[i].Past, b.Layers[i].Past, a.Layers[i].Present, b.Layers[i].Present)
			}
			for k, p := range a.Layers[i].Params {
				q := b.Layers[i].Params[br.Slot[k]]
				if !strings.HasSuffix(p.Name, "_merged_0") || p.Name != q.Name || p.Kind != q.Kind {
					t.Errorf("layer %d slot %d (with past %d): %q and %q, want one shared NAME_merged_0", i, k, br.Slot[k], p.Name, q.Name)
				}
			}
		}
	}
}

// TestFindMergedRefuses: branches over different weights, or of different
// depths, are not one stack.
func TestFindMergedRefuses(t *testing.T) {
	c := modelgen.Config{Arch: modelgen.Llama, Layers: 3, Hidden: 32, Heads: 4, KVHeads: 2, Seed: 5, KVCache: true, AttentionMask: true}
	_, p := testmodel.MergedPair(t, c)
	deeper := c
	deeper.Layers = 4
	_, q := testmodel.MergedPair(t, deeper)
	swapped := &merged.Pair{NoPast: p.NoPast, WithPast: proto.Clone(p.WithPast).(*pb.ModelProto)}
	// The with-past branch reads layer 1's weights in layer 0.
	for _, n := range swapped.WithPast.Graph.Node {
		for j, in := range n.Input {
			if strings.HasPrefix(in, "model.layers.0.") {
				n.Input[j] = strings.Replace(in, "layers.0.", "layers.1.", 1)
			}
		}
	}
	for name, c := range map[string]struct {
		p    *merged.Pair
		want string
	}{
		"depth":   {&merged.Pair{NoPast: p.NoPast, WithPast: q.WithPast}, "3 layers of 2 residual branches without past, 4"},
		"weights": {swapped, "is no parameter of the no-past"},
	} {
		_, err := discover.FindMerged(c.p)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", name, err, c.want)
		}
	}
}

// TestFindRefusesMerged: Find on the merged file itself says where the
// layers are.
func TestFindRefusesMerged(t *testing.T) {
	m, err := modelgen.BuildOptimumMerged(modelgen.Config{Arch: modelgen.Llama, Layers: 2, Hidden: 16, Heads: 2, Seed: 1, KVCache: true, AttentionMask: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := discover.Find(m); err == nil || !strings.Contains(err.Error(), "optimum's merged decoder") {
		t.Errorf("error %v, want one naming the merged decoder", err)
	}
}
