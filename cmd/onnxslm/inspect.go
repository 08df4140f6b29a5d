package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/onnxslm/onnxslm/internal/builtin"
	"github.com/onnxslm/onnxslm/internal/units"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

func init() {
	register(&command{
		Name:    "inspect",
		Args:    "MODEL",
		Summary: "Describe a model: IR version, opsets, producer, inputs and outputs, op counts, parameters, external data.",
		Flags: func(fs *pflag.FlagSet) func(ctx context.Context, io *stdio, args []string) error {
			asJSON := fs.Bool("json", false, "print one JSON object on stdout instead of a table")
			return func(ctx context.Context, io *stdio, args []string) error {
				if len(args) != 1 {
					return usagef("inspect takes one MODEL (a path or builtin:NAME), got %d arguments", len(args))
				}
				// Describing a model needs its graph and dims, not its weights:
				// external data is checked but not read.
				m, err := loadModelWith(args[0], onnx.LoadGraphOnly)
				if err != nil {
					return err
				}
				r := newInspectReport(args[0], m)
				if *asJSON {
					return r.writeJSON(io.Stdout)
				}
				return r.writeTable(io.Stdout)
			}
		},
	})
}

// loadModelArg loads a MODEL argument: a path, or builtin:NAME for a model
// shipped in the binary.
func loadModelArg(arg string) (*onnx.Model, error) { return loadModelWith(arg, onnx.Load) }

// loadModelWith is loadModelArg with load reading a path.
func loadModelWith(arg string, load func(string) (*onnx.Model, error)) (*onnx.Model, error) {
	if builtin.IsBuiltin(arg) {
		b, err := builtin.Model(arg)
		if err != nil {
			return nil, err
		}
		return onnx.LoadBytes(b, arg)
	}
	m, err := load(arg)
	if err != nil {
		return nil, err
	}
	return inlineFunctions(arg, m)
}

// inspectReport is what `onnxslm inspect` prints, as a table or as JSON (one
// object, snake_case keys). Layer discovery adds its fields here.
type inspectReport struct {
	Model             string            `json:"model"`
	IRVersion         int64             `json:"ir_version"`
	OpsetImport       []inspectOpset    `json:"opset_import"`
	ProducerName      string            `json:"producer_name"`
	ProducerVersion   string            `json:"producer_version"`
	Inputs            []inspectValue    `json:"inputs"`
	Outputs           []inspectValue    `json:"outputs"`
	OpCounts          map[string]int    `json:"op_counts"`
	NumNodes          int               `json:"num_nodes"`
	NumInitializers   int               `json:"num_initializers"`
	Parameters        int64             `json:"parameters"`      // elements of floating-point initializers
	ParameterBytes    int64             `json:"parameter_bytes"` // their size in bytes
	ExternalDataFiles []string          `json:"external_data_files"`
	Metadata          map[string]string `json:"metadata"`
	// Decoder layers found by structure (package discover); NumLayers is 0 and
	// LayersError says why when the model is not a stack of decoder layers.
	NumLayers   int            `json:"num_layers"`
	Layers      []inspectLayer `json:"layers"`
	LayersError string         `json:"layers_error,omitempty"`
	FinalNorm   string         `json:"final_norm,omitempty"`
	// Pruned summarises what onnxslm did to this model (from its metadata).
	Pruned *inspectPruned `json:"pruned,omitempty"`
	// Merged describes optimum's merged decoder (the layers are its no-past branch's).
	Merged *inspectMerged `json:"merged_decoder,omitempty"`
}

type inspectOpset struct {
	Domain  string `json:"domain"`
	Version int64  `json:"version"`
}

// inspectValue is a graph input or output.
type inspectValue = onnx.Value

func newInspectReport(name string, m *onnx.Model) *inspectReport {
	p := m.Proto
	g := p.GetGraph()
	r := &inspectReport{
		Model:             name,
		IRVersion:         p.GetIrVersion(),
		OpsetImport:       []inspectOpset{},
		ProducerName:      p.GetProducerName(),
		ProducerVersion:   p.GetProducerVersion(),
		Inputs:            []inspectValue{},
		Outputs:           []inspectValue{},
		NumNodes:          len(g.GetNode()),
		NumInitializers:   len(g.GetInitializer()),
		ExternalDataFiles: append([]string{}, m.ExternalFiles...),
		Metadata:          map[string]string{},
	}
	for _, o := range p.GetOpsetImport() {
		r.OpsetImport = append(r.OpsetImport, inspectOpset{Domain: domainName(o.GetDomain()), Version: o.GetVersion()})
	}
	inits := map[string]bool{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
	}
	r.Parameters, r.ParameterBytes = onnx.Parameters(p)
	for _, v := range g.GetInput() {
		if !inits[v.GetName()] { // IR < 4 lists initializers among the inputs
			r.Inputs = append(r.Inputs, describeValue(v))
		}
	}
	for _, v := range g.GetOutput() {
		r.Outputs = append(r.Outputs, describeValue(v))
	}
	r.OpCounts = opCounts(g)
	for _, kv := range p.GetMetadataProps() {
		r.Metadata[kv.GetKey()] = kv.GetValue()
	}
	r.addLayers(p)
	return r
}

func domainName(d string) string {
	if d == "" {
		return "ai.onnx"
	}
	return d
}

func describeValue(v *pb.ValueInfoProto) inspectValue { return onnx.DescribeValue(v) }

func (r *inspectReport) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func (r *inspectReport) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	opsets := make([]string, len(r.OpsetImport))
	for i, o := range r.OpsetImport {
		opsets[i] = fmt.Sprintf("%s %d", o.Domain, o.Version)
	}
	producer := strings.TrimSpace(r.ProducerName + " " + r.ProducerVersion)
	if producer == "" {
		producer = "(none)"
	}
	ext := "(none)"
	if len(r.ExternalDataFiles) > 0 {
		ext = strings.Join(r.ExternalDataFiles, ", ")
	}
	fmt.Fprintf(tw, "model\t%s\n", r.Model)
	fmt.Fprintf(tw, "ir_version\t%d\n", r.IRVersion)
	fmt.Fprintf(tw, "opsets\t%s\n", strings.Join(opsets, ", "))
	fmt.Fprintf(tw, "producer\t%s\n", producer)
	fmt.Fprintf(tw, "nodes\t%d\n", r.NumNodes)
	fmt.Fprintf(tw, "initializers\t%d\n", r.NumInitializers)
	fmt.Fprintf(tw, "parameters\t%s (%s)\n", groupDigits(r.Parameters), units.Bytes(uint64(r.ParameterBytes)))
	fmt.Fprintf(tw, "external data\t%s\n", ext)
	keys := make([]string, 0, len(r.Metadata))
	for k := range r.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		label := ""
		if i == 0 {
			label = "metadata"
		}
		fmt.Fprintf(tw, "%s\t%s = %s\n", label, k, r.Metadata[k])
	}
	for _, part := range []struct {
		title  string
		values []inspectValue
	}{{"inputs", r.Inputs}, {"outputs", r.Outputs}} {
		fmt.Fprintf(tw, "\n%s\n", part.title)
		for _, v := range part.values {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", v.Name, v.DType, v.ShapeString())
		}
	}
	r.writeLayers(tw)
	fmt.Fprintf(tw, "\nops\n")
	ops := make([]string, 0, len(r.OpCounts))
	for op := range r.OpCounts {
		ops = append(ops, op)
	}
	sort.Slice(ops, func(i, j int) bool {
		if a, b := r.OpCounts[ops[i]], r.OpCounts[ops[j]]; a != b {
			return a > b
		}
		return ops[i] < ops[j]
	})
	for _, op := range ops {
		fmt.Fprintf(tw, "  %s\t%d\n", op, r.OpCounts[op])
	}
	return tw.Flush()
}

// groupDigits writes n with thousands separators: 1234567 → "1,234,567".
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
