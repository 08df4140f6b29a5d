package discover

// This file writes the results into the Stack: each layer's nodes, parameter
// slots, KV inputs and outputs, and the shared values.

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/onnxslm/onnxslm/graph"
	"github.com/onnxslm/onnxslm/onnx"
)

func (l *layering) branchNames() []string {
	names := make([]string, l.period)
	count := map[string]int{}
	for b := 0; b < l.period; b++ {
		name := "block"
		if l.period > 1 {
			name = "step"
			attn, proj := false, false
			for _, x := range l.flow.steps[l.firstStep+b] {
				if isAttention(x) {
					attn = true
				}
				if isProjectionNode(x) {
					proj = true
				}
			}
			switch {
			case attn:
				name = "attn"
			case proj:
				name = "mlp"
			}
		}
		count[name]++
		if count[name] > 1 {
			name = fmt.Sprintf("%s%d", name, count[name])
		}
		names[b] = name
	}
	return names
}

func (l *layering) describe(params [][]*layerParam) {
	s := l.stack
	branches := l.branchNames()
	// Roles from layer 0 (all layers have the same slots).
	roles := make([]string, len(params[0]))
	perKind := map[string]int{}
	total := map[string]int{}
	group := func(p *layerParam) string {
		b := "layer"
		if p.branch >= 0 {
			b = branches[p.branch]
		}
		return b + "." + p.kind.String()
	}
	for _, p := range params[0] {
		total[group(p)]++
	}
	for i, p := range params[0] {
		gname := group(p)
		if total[gname] > 1 {
			roles[i] = fmt.Sprintf("%s.%d", gname, perKind[gname])
			perKind[gname]++
		} else {
			roles[i] = gname
		}
	}
	shared := map[*graph.Value]bool{}
	constReaders := map[*graph.Value][]int{}
	for k := 0; k < l.numLayers; k++ {
		layer := Layer{Index: k, Input: l.input[k].Name, Output: l.output[k].Name}
		if l.fused {
			layer.InputBranch, layer.OutputBranch = s.Branch[k], s.Branch[k+1]
			if s.BranchBias != nil {
				layer.OutputBranchBias = s.BranchBias[k+1]
			}
		}
		for _, x := range l.nodes[k] {
			layer.Nodes = append(layer.Nodes, x.Index)
			for _, v := range append(slices.Clip(x.Inputs), x.Implicit...) {
				if v == nil || v == l.input[k] || (l.fused && v == l.branchIn(k)) {
					continue
				}
				t := graph.Constant(v)
				if t != nil && isParamTensor(t) {
					continue
				}
				if v.Producer != nil && l.owner[v.Producer] < 0 {
					shared[v] = true
				}
				if v.Input && v.Init == nil && !l.pastInputs[k][v] {
					shared[v] = true
				}
				if t != nil && v.Producer == nil {
					constReaders[v] = append(constReaders[v], k)
				}
			}
		}
		sort.Ints(layer.Nodes)
		for i, lp := range params[k] {
			p := Param{Slot: i, Kind: lp.kind, Role: roles[i], Name: lp.value.Name,
				DType: onnx.DTypeName(pb2dt(lp.tensor)), Dims: slices.Clone(lp.tensor.Dims),
				Elements: graph.NumElements(lp.tensor.Dims), Transposed: lp.transposed, Hint: hint(lp.uses[0].reader.Name, k)}
			for _, u := range lp.uses {
				use := Use{Node: u.reader.Index, Input: u.input}
				for _, n := range u.through {
					use.Via = append(use.Via, n.Index)
				}
				p.Uses = append(p.Uses, use)
			}
			layer.Params = append(layer.Params, p)
		}
		layer.Projections, layer.Norms = l.projections(k, params[k])
		layer.Attention = l.attention(k, layer.Projections)
		// Per-layer inputs and outputs in structural order.
		var past []*graph.Value
		for v := range l.pastInputs[k] {
			past = append(past, v)
		}
		sort.Slice(past, func(i, j int) bool {
			hi, hj := l.downHash[k][past[i]], l.downHash[k][past[j]]
			if hi != hj {
				return hi < hj
			}
			return past[i].Name < past[j].Name
		})
		for _, v := range past {
			layer.Past = append(layer.Past, v.Name)
		}
		var pres []*graph.Value
		for _, x := range l.nodes[k] {
			for _, o := range x.Outputs {
				if o != nil && o.IsOutput() {
					pres = append(pres, o)
				}
			}
		}
		sort.SliceStable(pres, func(i, j int) bool { return l.upHash[k][pres[i]] < l.upHash[k][pres[j]] })
		// Present[i] is the output computed from Past[i] (present = Concat(past, new)),
		// when there is one; the other outputs follow.
		taken := map[*graph.Value]bool{}
		for _, v := range past {
			if o := fusedPresent(v); o != nil && slices.Contains(pres, o) && !taken[o] {
				taken[o] = true
				layer.Present = append(layer.Present, o.Name)
				continue
			}
			reach := l.reachable(k, v)
			for _, o := range pres {
				if !taken[o] && reach[o] {
					taken[o] = true
					layer.Present = append(layer.Present, o.Name)
					break
				}
			}
		}
		for _, v := range pres {
			if !taken[v] {
				layer.Present = append(layer.Present, v.Name)
			}
		}
		s.Layers = append(s.Layers, layer)
	}
	alignRoles(s.Layers)
	for v, ks := range constReaders {
		if slices.ContainsFunc(ks, func(k int) bool { return k != ks[0] }) {
			shared[v] = true // a constant several layers read (a causal mask buffer)
		}
	}
	s.Shared = sortedNames(shared)
	for _, x := range l.flow.a.order {
		if l.owner[x] < 0 {
			s.SharedNodes = append(s.SharedNodes, x.Index)
		}
	}
	sort.Ints(s.SharedNodes)
}

// hint strips the layer's own path from a node name: "/model/layers.3/self_attn/
// q_proj/MatMul" gives "self_attn/q_proj/MatMul". Names are only hints.
func hint(name string, layer int) string {
	parts := strings.Split(strings.TrimPrefix(name, "/"), "/")
	idx := fmt.Sprint(layer)
	for i, p := range parts {
		if p == idx || strings.HasSuffix(p, "."+idx) || strings.HasSuffix(p, "_"+idx) {
			return strings.Join(parts[i+1:], "/")
		}
	}
	return name
}

// alignRoles keeps a projection's role only where every layer's structure gives
// the same one (the layers have the same structure, so this is a safeguard).
func alignRoles(layers []Layer) {
	for i := range layers[0].Projections {
		same := true
		for _, l := range layers[1:] {
			same = same && i < len(l.Projections) && l.Projections[i].Role == layers[0].Projections[i].Role
		}
		if !same {
			for k := range layers {
				if i < len(layers[k].Projections) {
					layers[k].Projections[i].Role = RoleUnknown
				}
			}
		}
	}
}

// fusedPresent is the output of a fused attention op that returns the cache
// it reads as v (GroupQueryAttention and MultiHeadAttention: past key and
// value at inputs 3 and 4 (6 and 7 for MultiHeadAttention), present key and
// value at outputs 1 and 2), or nil.
func fusedPresent(v *graph.Value) *graph.Value {
	for _, c := range v.Consumers {
		if !isFusedAttention(c) {
			continue
		}
		first := 3
		if c.Op == "MultiHeadAttention" {
			first = 6
		}
		for j, in := range c.Inputs {
			if in == v && (j == first || j == first+1) && len(c.Outputs) > j-first+1 {
				return c.Outputs[j-first+1]
			}
		}
	}
	return nil
}
