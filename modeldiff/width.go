package modeldiff

import (
	"encoding/json"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// WidthDiff says which layers' MLPs changed width or attentions lost heads
// (onnxslm prune --params-ratio removes MLP channels and heads of kept
// layers).
type WidthDiff struct {
	// Source is "layers" when both models are decoder stacks (the widths are
	// read from their down projections, the heads from their attention
	// shapes), or "metadata" when B's layers differ in width, which discovery
	// does not accept as a stack: B's widths, heads and the layers they were
	// kept from are then B's onnxslm.mlp_widths, onnxslm.attn_heads and
	// onnxslm.kept_from.
	Source string `json:"source"`
	// Layers are B's layers whose MLP width or query heads differ from those
	// of the A layer they were kept from.
	Layers []LayerWidth `json:"layers"`
}

// LayerWidth is one layer's MLP width (and query heads) in A and in B.
type LayerWidth struct {
	Layer int `json:"layer"` // index in B
	From  int `json:"from"`  // index in A
	A     int `json:"a"`
	B     int `json:"b"`
	// HeadsA and HeadsB are the query heads (0 when not known).
	HeadsA int `json:"heads_a,omitempty"`
	HeadsB int `json:"heads_b,omitempty"`
}

// attnHeads returns each layer's query heads (0 when discovery found none).
func attnHeads(s *discover.Stack) []int {
	out := make([]int, len(s.Layers))
	for i, l := range s.Layers {
		if l.Attention != nil {
			out[i] = l.Attention.Heads
		}
	}
	return out
}

// mlpWidths returns each layer's MLP width: the input features of its down
// projection (0 when discovery found none).
func mlpWidths(s *discover.Stack) []int {
	out := make([]int, len(s.Layers))
	for i, l := range s.Layers {
		for _, p := range l.Projections {
			if p.Role == discover.RoleDown {
				out[i] = int(p.In)
			}
		}
	}
	return out
}

// widthDiff compares the MLP widths of A (a decoder stack) and B: from B's
// stack and keptFrom when B is one (sb non-nil), else from B's metadata. It
// returns nil when no width changed or B's widths are unknown.
func widthDiff(sa, sb *discover.Stack, keptFrom []int, metaB []*pb.StringStringEntryProto) *WidthDiff {
	wa, ha := mlpWidths(sa), attnHeads(sa)
	var wb, hb []int
	d := &WidthDiff{Source: "layers", Layers: []LayerWidth{}}
	if sb != nil {
		wb, hb = mlpWidths(sb), attnHeads(sb)
	} else {
		d.Source = "metadata"
		for _, kv := range metaB {
			switch kv.GetKey() {
			case "onnxslm.mlp_widths":
				if json.Unmarshal([]byte(kv.GetValue()), &wb) != nil {
					return nil
				}
			case "onnxslm.attn_heads":
				if json.Unmarshal([]byte(kv.GetValue()), &hb) != nil {
					return nil
				}
			case "onnxslm.kept_from":
				if json.Unmarshal([]byte(kv.GetValue()), &keptFrom) != nil {
					return nil
				}
			}
		}
	}
	if len(wb) == 0 || len(keptFrom) != len(wb) {
		return nil
	}
	if len(hb) != len(wb) {
		hb = make([]int, len(wb))
	}
	for j, k := range keptFrom {
		if k < 0 || k >= len(wa) {
			continue
		}
		lw := LayerWidth{Layer: j, From: k, A: wa[k], B: wb[j], HeadsA: ha[k], HeadsB: hb[j]}
		if hb[j] == 0 {
			lw.HeadsB = ha[k] // not recorded: unchanged
		}
		mlp := wa[k] != 0 && wb[j] != 0 && wa[k] != wb[j]
		if !mlp && (lw.HeadsA == 0 || lw.HeadsB == 0 || lw.HeadsA == lw.HeadsB) {
			continue
		}
		d.Layers = append(d.Layers, lw)
	}
	if len(d.Layers) == 0 {
		return nil
	}
	return d
}
