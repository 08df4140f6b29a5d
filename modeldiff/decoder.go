package modeldiff

import (
	"encoding/json"
	"strconv"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// DecoderDiff compares two decoder stacks layer by layer.
type DecoderDiff struct {
	LayersA int `json:"layers_a"`
	LayersB int `json:"layers_b"`
	// KeptFrom holds, for each layer of B, the layer of A it was kept from;
	// -1 where no parameter tensor of the B layer equals one of an A layer
	// (source "weights"). Empty when no B layer shares a tensor with A.
	KeptFrom []int `json:"kept_from"`
	// KeptFromSource is "metadata" (B's onnxslm.kept_from, valid for A's
	// layer count), "weights" (layers aligned in order by the parameter
	// tensors they share by value) or "none".
	KeptFromSource string `json:"kept_from_source"`
	// RemovedLayers are the A layers no B layer was kept from.
	RemovedLayers []int `json:"removed_layers"`
	// Windows are the merged windows in A's layer indices (inclusive): B's
	// onnxslm.windows when KeptFrom comes from metadata, otherwise those
	// implied by the fused layers (a fused layer and the removed layers above
	// it).
	Windows [][2]int `json:"windows"`
	// Fused lists the B layers whose parameters differ from those of the A
	// layer they were kept from.
	Fused []FusedLayer `json:"fused_layers"`
}

// FusedLayer is a B layer with parameters that are not its A layer's.
type FusedLayer struct {
	Layer int `json:"layer"` // index in B
	From  int `json:"from"`  // index in A
	// Window is the A layers merged into it, when known.
	Window  *[2]int       `json:"window,omitempty"`
	Tensors []FusedTensor `json:"tensors"`
}

// FusedTensor is one parameter slot of a fused layer.
type FusedTensor struct {
	// Role is the slot's structural role ("attn.proj_weight.0", ...).
	Role string `json:"role"`
	A    string `json:"a"` // the tensor of A's layer
	B    string `json:"b"` // the tensor of B's layer
	// New says B's tensor exists only in B (a name A does not have).
	New bool `json:"new"`
	// SameAsLayer is the A layer whose tensor of this role B's equals, if any
	// (a weight taken over from another layer rather than computed).
	SameAsLayer *int `json:"same_as_layer,omitempty"`
	Change
}

// stackSums fingerprints every parameter slot of every layer of st, by role.
func stackSums(st *discover.Stack, t *tensors) ([]map[string]slotSum, error) {
	sums := make([]map[string]slotSum, st.NumLayers())
	for i := range st.Layers {
		s, err := layerSums(&st.Layers[i], t)
		if err != nil {
			return nil, err
		}
		sums[i] = s
	}
	return sums, nil
}

func decoderDiff(sa, sb *discover.Stack, ta, tb *tensors, metaB []*pb.StringStringEntryProto) (*DecoderDiff, error) {
	LA, LB := sa.NumLayers(), sb.NumLayers()
	d := &DecoderDiff{LayersA: LA, LayersB: LB, KeptFrom: []int{}, RemovedLayers: []int{}, Windows: [][2]int{}, Fused: []FusedLayer{}}

	// Fingerprints of every parameter slot of every layer, by role.
	sumsA, err := stackSums(sa, ta)
	if err != nil {
		return nil, err
	}
	sumsB, err := stackSums(sb, tb)
	if err != nil {
		return nil, err
	}

	meta := map[string]string{}
	for _, kv := range metaB {
		meta[kv.GetKey()] = kv.GetValue()
	}
	if kf, ok := metaKeptFrom(meta, LA, LB); ok {
		d.KeptFrom, d.KeptFromSource = kf, "metadata"
		var ws [][2]int
		if json.Unmarshal([]byte(meta["onnxslm.windows"]), &ws) == nil {
			for _, w := range ws {
				if w[0] >= 0 && w[0] < w[1] && w[1] < LA {
					d.Windows = append(d.Windows, w)
				}
			}
		}
	} else {
		d.KeptFrom, d.KeptFromSource = alignLayers(sumsA, sumsB)
	}

	kept := map[int]bool{}
	for _, k := range d.KeptFrom {
		if k >= 0 {
			kept[k] = true
		}
	}
	if len(d.KeptFrom) > 0 {
		for i := 0; i < LA; i++ {
			if !kept[i] {
				d.RemovedLayers = append(d.RemovedLayers, i)
			}
		}
	}

	inferWindows := d.KeptFromSource != "metadata"
	for j, k := range d.KeptFrom {
		if k < 0 {
			continue
		}
		fl := FusedLayer{Layer: j, From: k, Tensors: []FusedTensor{}}
		byRole := map[string]discover.Param{}
		for _, p := range sa.Layers[k].Params {
			byRole[p.Role] = p
		}
		for _, p := range sb.Layers[j].Params {
			pa, ok := byRole[p.Role]
			sbv, okB := sumsB[j][p.Role]
			if !ok || !okB {
				continue
			}
			if sbv.sum == sumsA[k][p.Role].sum {
				continue
			}
			ft := FusedTensor{Role: p.Role, A: pa.Name, B: p.Name, New: !hasTensor(ta, p.Name)}
			for i := range sumsA {
				if s, ok := sumsA[i][p.Role]; ok && s.sum == sbv.sum {
					ft.SameAsLayer = &i
					break
				}
			}
			if xa, xb := ta.byName[pa.Name], tb.byName[p.Name]; xa != nil && xb != nil {
				var err error
				if ft.Change, err = change(xa, xb); err != nil {
					return nil, err
				}
			}
			fl.Tensors = append(fl.Tensors, ft)
		}
		if len(fl.Tensors) == 0 {
			continue
		}
		if inferWindows {
			next := LA
			for _, n := range d.KeptFrom[j+1:] {
				if n >= 0 {
					next = n
					break
				}
			}
			if next-1 > k {
				d.Windows = append(d.Windows, [2]int{k, next - 1})
			}
		}
		for _, w := range d.Windows {
			if w[0] == k {
				fl.Window = &[2]int{w[0], w[1]}
			}
		}
		d.Fused = append(d.Fused, fl)
	}
	return d, nil
}

func hasTensor(t *tensors, name string) bool {
	_, ok := t.byName[name]
	return ok
}

// slotSum is the fingerprint of one parameter slot's tensor.
type slotSum struct {
	sum  [32]byte
	proj bool // a projection weight or bias (what merge rules combine)
}

// layerSums fingerprints the parameter slots of a layer by role. Slots whose
// tensor is not a constant of the model (a computed parameter) are left out.
func layerSums(l *discover.Layer, t *tensors) (map[string]slotSum, error) {
	out := make(map[string]slotSum, len(l.Params))
	for _, p := range l.Params {
		if !hasTensor(t, p.Name) {
			continue
		}
		s, err := t.sum(p.Name)
		if err != nil {
			return nil, err
		}
		out[p.Role] = slotSum{sum: s, proj: p.Kind.IsProjection()}
	}
	return out, nil
}

// metaKeptFrom reads onnxslm.kept_from when it describes B (LB entries) as
// made from a model of LA layers: strictly increasing indices in [0, LA).
func metaKeptFrom(meta map[string]string, LA, LB int) ([]int, bool) {
	v, ok := meta["onnxslm.kept_from"]
	if !ok {
		return nil, false
	}
	if lb, ok := meta["onnxslm.layers_before"]; ok {
		if n, err := strconv.Atoi(lb); err != nil || n != LA {
			return nil, false
		}
	}
	var kf []int
	if err := json.Unmarshal([]byte(v), &kf); err != nil || len(kf) != LB {
		return nil, false
	}
	for i, k := range kf {
		if k < 0 || k >= LA || i > 0 && k <= kf[i-1] {
			return nil, false
		}
	}
	return kf, true
}

// alignLayers maps B's layers in order onto A's (strictly increasing) so that
// the parameter slots whose values agree are the most: norm (non-projection)
// slots first, then projections, since every merge rule keeps the norms of
// the layer a window merges into and combines or replaces its projections.
// Ties prefer lower A layers. B layers that share no slot with their A layer
// get -1.
func alignLayers(a, b []map[string]slotSum) ([]int, string) {
	LA, LB := len(a), len(b)
	if LB == 0 || LB > LA {
		return []int{}, "none"
	}
	// A matching norm slot outweighs any number of matching projections.
	normWeight := 1
	for _, l := range b {
		normWeight = max(normWeight, len(l)+1)
	}
	score := make([][]int, LB)
	total := 0
	for j := range b {
		score[j] = make([]int, LA)
		for i := range a {
			for role, s := range b[j] {
				if t, ok := a[i][role]; ok && t.sum == s.sum {
					if s.proj {
						score[j][i]++
					} else {
						score[j][i] += normWeight
					}
				}
			}
			total += score[j][i]
		}
	}
	if total == 0 {
		return []int{}, "none"
	}
	// best[j][i]: the best score of B layers j.. mapped onto A layers i..
	best := make([][]int, LB+1)
	for j := range best {
		best[j] = make([]int, LA+1)
	}
	const impossible = -1 << 50
	for j := LB - 1; j >= 0; j-- {
		for i := LA; i >= 0; i-- {
			if LA-i < LB-j {
				best[j][i] = impossible
				continue
			}
			take := score[j][i] + best[j+1][i+1]
			skip := best[j][i+1]
			best[j][i] = max(take, skip)
		}
	}
	kf := make([]int, 0, LB)
	i := 0
	for j := 0; j < LB; j++ {
		for LA-(i+1) >= LB-j && best[j][i+1] > score[j][i]+best[j+1][i+1] {
			i++
		}
		if score[j][i] == 0 {
			kf = append(kf, -1)
		} else {
			kf = append(kf, i)
		}
		i++
	}
	return kf, "weights"
}
