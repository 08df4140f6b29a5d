package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// inspectLayer is one decoder layer as `inspect` shows it.
type inspectLayer struct {
	Index     int            `json:"index"`
	Input     string         `json:"input"`
	Output    string         `json:"output"`
	Nodes     int            `json:"nodes"`
	NumParams int64          `json:"num_params"`
	Params    []inspectParam `json:"params"`
	Past      []string       `json:"past,omitempty"`
	Present   []string       `json:"present,omitempty"`
	// InputBranch and OutputBranch: the residual branch the layer's input norm
	// adds, and the one it leaves for the next norm, in layouts that fuse the
	// residual add into the norm (onnxruntime-genai's SkipSimplifiedLayerNormalization).
	InputBranch  string              `json:"input_branch,omitempty"`
	OutputBranch string              `json:"output_branch,omitempty"`
	Projections  []inspectProjection `json:"projections"`
}

// inspectProjection is one weight projection of a layer.
type inspectProjection struct {
	Role    string `json:"role"`
	Op      string `json:"op"`
	Storage string `json:"storage"`
	In      int64  `json:"in"`
	Out     int64  `json:"out"`
	// Bits and BlockSize: blockwise quantized weights (MatMulNBits).
	Bits      int `json:"bits,omitempty"`
	BlockSize int `json:"block_size,omitempty"`
	// Weights are the parameter slots holding the weight, by part (matrix,
	// packed, scales, zero_points).
	Weights map[string]int `json:"weights"`
	Bias    int            `json:"bias"`
}

// inspectParam is one aligned parameter slot of a layer.
type inspectParam struct {
	Slot       int     `json:"slot"`
	Kind       string  `json:"kind"`
	Role       string  `json:"role"`
	Name       string  `json:"name"`
	DType      string  `json:"dtype"`
	Dims       []int64 `json:"dims"`
	Elements   int64   `json:"elements"`
	Transposed bool    `json:"transposed,omitempty"`
}

// inspectPruned is what onnxslm recorded in a model it wrote.
type inspectPruned struct {
	Version      string   `json:"version,omitempty"`
	Method       string   `json:"method,omitempty"`
	Merge        string   `json:"merge,omitempty"`
	Threshold    string   `json:"threshold,omitempty"`
	Windows      [][2]int `json:"windows"`
	KeptFrom     []int    `json:"kept_from"`
	LayersBefore string   `json:"layers_before,omitempty"`
	LayersAfter  string   `json:"layers_after,omitempty"`
}

func (r *inspectReport) addLayers(m *pb.ModelProto) {
	r.Layers = []inspectLayer{}
	st, err := r.findLayers(m)
	if err != nil {
		var nd *discover.NotDecoderError
		if errors.As(err, &nd) {
			r.LayersError = nd.Error()
		} else {
			r.LayersError = err.Error()
		}
	} else {
		r.NumLayers = st.NumLayers()
		r.FinalNorm = st.FinalNorm
		for _, l := range st.Layers {
			il := inspectLayer{Index: l.Index, Input: l.Input, Output: l.Output, Nodes: len(l.Nodes), NumParams: l.NumParams(), Past: l.Past, Present: l.Present, Params: []inspectParam{}}
			for _, p := range l.Params {
				il.Params = append(il.Params, inspectParam{Slot: p.Slot, Kind: p.Kind.String(), Role: p.Role, Name: p.Name, DType: p.DType, Dims: p.Dims, Elements: p.Elements, Transposed: p.Transposed})
			}
			il.InputBranch, il.OutputBranch = l.InputBranch, l.OutputBranch
			il.Projections = []inspectProjection{}
			for _, p := range l.Projections {
				ip := inspectProjection{Role: p.Role.String(), Op: p.Op, Storage: p.Storage.String(), In: p.In, Out: p.Out,
					Bits: p.Bits, BlockSize: p.BlockSize, Weights: map[string]int{}, Bias: p.Bias}
				for _, w := range p.Weights {
					ip.Weights[w.Part.String()] = w.Slot
				}
				il.Projections = append(il.Projections, ip)
			}
			r.Layers = append(r.Layers, il)
		}
	}
	md := map[string]string{}
	for _, kv := range m.GetMetadataProps() {
		if k, ok := strings.CutPrefix(kv.GetKey(), "onnxslm."); ok {
			md[k] = kv.GetValue()
		}
	}
	if len(md) == 0 {
		return
	}
	p := &inspectPruned{Version: md["version"], Method: md["method"], Merge: md["merge"], Threshold: md["threshold"],
		LayersBefore: md["layers_before"], LayersAfter: md["layers_after"], Windows: [][2]int{}, KeptFrom: []int{}}
	_ = json.Unmarshal([]byte(md["windows"]), &p.Windows)
	_ = json.Unmarshal([]byte(md["kept_from"]), &p.KeptFrom)
	r.Pruned = p
}

func (r *inspectReport) writeLayers(w io.Writer) {
	r.writeMerged(w)
	if r.Pruned != nil {
		p := r.Pruned
		fmt.Fprintf(w, "\npruned by onnxslm %s\n", p.Version)
		fmt.Fprintf(w, "  method\t%s %s\n", p.Method, p.Merge)
		if p.Threshold != "" {
			fmt.Fprintf(w, "  threshold\t%s\n", p.Threshold)
		}
		fmt.Fprintf(w, "  layers\t%s → %s\n", p.LayersBefore, p.LayersAfter)
		fmt.Fprintf(w, "  merged windows\t%v\n", p.Windows)
		fmt.Fprintf(w, "  kept layers came from\t%v\n", p.KeptFrom)
	}
	if r.NumLayers == 0 {
		fmt.Fprintf(w, "\ndecoder layers\tnone found: %s\n", r.LayersError)
		return
	}
	fmt.Fprintf(w, "\ndecoder layers\t%d (final norm feeds the head: %s)\n", r.NumLayers, r.FinalNorm)
	fmt.Fprintf(w, "  layer\tinput → output\tnodes\tparams\n")
	for _, l := range r.Layers {
		fmt.Fprintf(w, "  %d\t%s → %s\t%d\t%s\n", l.Index, l.Input, l.Output, l.Nodes, groupDigits(l.NumParams))
	}
	if len(r.Layers) > 0 {
		fmt.Fprintf(w, "\nparameter slots (layer 0; aligned in every layer)\n")
		for _, p := range r.Layers[0].Params {
			t := ""
			if p.Transposed {
				t = " (stored transposed)"
			}
			fmt.Fprintf(w, "  %d\t%s\t%s %v\t%s%s\n", p.Slot, p.Role, p.DType, p.Dims, p.Name, t)
		}
		if ps := r.Layers[0].Projections; len(ps) > 0 {
			fmt.Fprintf(w, "\nprojections (layer 0)\n")
			for _, p := range ps {
				q := ""
				if p.Bits != 0 {
					q = fmt.Sprintf(" %d-bit, block %d", p.Bits, p.BlockSize)
				}
				fmt.Fprintf(w, "  %s\t%s %s%s\t%d → %d\n", p.Role, p.Op, p.Storage, q, p.In, p.Out)
			}
		}
	}
}
