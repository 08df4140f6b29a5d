package discover

// This file checks that every layer has the same structure and slots, and says
// which layer differs and how.

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

type layerSig struct {
	ops    map[string]int
	params []uint64
	past   int
	pres   int
}

func (l *layering) signature(k int, params []*layerParam) layerSig {
	s := layerSig{ops: map[string]int{}, past: len(l.pastInputs[k])}
	for _, x := range l.nodes[k] {
		if x.Op != "Identity" && !isWeightChain(x) {
			s.ops[l.opName(k, x)]++
		}
		for _, o := range x.Outputs {
			if o != nil && o.IsOutput() {
				s.pres++
			}
		}
	}
	for _, p := range params {
		s.params = append(s.params, p.key)
	}
	return s
}

func (a layerSig) equal(b layerSig) bool {
	if len(a.ops) != len(b.ops) || a.past != b.past || a.pres != b.pres || !slices.Equal(a.params, b.params) {
		return false
	}
	for op, n := range a.ops {
		if b.ops[op] != n {
			return false
		}
	}
	return true
}

// compare checks that all layers have the same structure and parameter slots, and
// says which layer differs from the others and how.
func (l *layering) compare(params [][]*layerParam) error {
	sigs := make([]layerSig, l.numLayers)
	for k := range sigs {
		sigs[k] = l.signature(k, params[k])
	}
	// The majority signature (ties: the earliest layer's).
	ref, best := 0, 0
	for k := range sigs {
		n := 0
		for j := range sigs {
			if sigs[j].equal(sigs[k]) {
				n++
			}
		}
		if n > best {
			ref, best = k, n
		}
	}
	if best == l.numLayers {
		return nil
	}
	var odd []int
	for k := range sigs {
		if !sigs[k].equal(sigs[ref]) {
			odd = append(odd, k)
		}
	}
	k := odd[0]
	others := "the other layers"
	if best == 1 {
		others = fmt.Sprintf("layer %d", ref)
	}
	how := l.describeDiff(sigs[k], sigs[ref], params[k], params[ref])
	msg := fmt.Sprintf("layer %d differs from %s: %s", k, others, how)
	if len(odd) > 1 {
		names := make([]string, len(odd))
		for i, o := range odd {
			names[i] = fmt.Sprint(o)
		}
		msg += fmt.Sprintf(" (layers differing from the majority: %s)", joinLimited(names, 8))
	}
	return notDecoder(k, "%s", msg)
}

func (l *layering) describeDiff(a, b layerSig, pa, pb []*layerParam) string {
	var parts []string
	ops := map[string]bool{}
	for op := range a.ops {
		ops[op] = true
	}
	for op := range b.ops {
		ops[op] = true
	}
	var opList []string
	for op := range ops {
		opList = append(opList, op)
	}
	sort.Strings(opList)
	var diffs []string
	for _, op := range opList {
		if a.ops[op] != b.ops[op] {
			diffs = append(diffs, fmt.Sprintf("%d %s (others %d)", a.ops[op], op, b.ops[op]))
		}
	}
	if len(diffs) > 0 {
		parts = append(parts, "it has "+joinLimited(diffs, 6))
	}
	if len(pa) != len(pb) {
		parts = append(parts, fmt.Sprintf("%d parameter tensors (others %d)%s", len(pa), len(pb), extraParams(pa, pb)))
	} else {
		for i := range pa {
			if pa[i].key != pb[i].key {
				parts = append(parts, fmt.Sprintf("its parameter %d (%s %s %s) does not match the others' (%s %s %s)", i,
					pa[i].kind, onnx.DTypeName(pb2dt(pa[i].tensor)), dimsString(pa[i].tensor.Dims),
					pb[i].kind, onnx.DTypeName(pb2dt(pb[i].tensor)), dimsString(pb[i].tensor.Dims)))
				break
			}
		}
	}
	if a.past != b.past || a.pres != b.pres {
		parts = append(parts, fmt.Sprintf("%d per-layer inputs and %d outputs (others %d and %d)", a.past, a.pres, b.past, b.pres))
	}
	if len(parts) == 0 {
		parts = append(parts, "its nodes are connected differently")
	}
	return strings.Join(parts, "; ")
}

// extraParams describes the parameters one layer has and the other lacks.
func extraParams(pa, pb []*layerParam) string {
	count := func(ps []*layerParam) map[string]int {
		m := map[string]int{}
		for _, p := range ps {
			m[fmt.Sprintf("%s %s", p.kind, dimsString(p.tensor.Dims))]++
		}
		return m
	}
	ca, cb := count(pa), count(pb)
	var extra []string
	for key, n := range ca {
		if d := n - cb[key]; d > 0 {
			extra = append(extra, fmt.Sprintf("%d× %s", d, key))
		}
	}
	var missing []string
	for key, n := range cb {
		if d := n - ca[key]; d > 0 {
			missing = append(missing, fmt.Sprintf("%d× %s", d, key))
		}
	}
	sort.Strings(extra)
	sort.Strings(missing)
	s := ""
	if len(extra) > 0 {
		s += ": extra " + joinLimited(extra, 4)
	}
	if len(missing) > 0 {
		if s == "" {
			s = ":"
		} else {
			s += ";"
		}
		s += " missing " + joinLimited(missing, 4)
	}
	return s
}

func pb2dt(t *pb.TensorProto) pb.TensorProto_DataType {
	return pb.TensorProto_DataType(t.GetDataType())
}

func dimsString(d []int64) string {
	parts := make([]string, len(d))
	for i, x := range d {
		parts[i] = fmt.Sprint(x)
	}
	return "[" + strings.Join(parts, ",") + "]"
}
