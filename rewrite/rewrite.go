// Package rewrite merges and removes decoder layers of an ONNX model, as a list of
// small graph passes over the graph package's IR.
package rewrite

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/graph"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/slm"
	"google.golang.org/protobuf/proto"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// Rule says how the parameters of a merged window [low..high] become those of the
// single layer that replaces it.
type Rule string

// Merge rules.
const (
	// Paper is the SLM paper's rule: θ = θ_low + Σ_{i=low+1..high}(θ_i − θ_low) for
	// every projection weight and bias; norm (and other) parameters from layer low.
	Paper Rule = "paper"
	// Code is what the authors' released code does (it updates the merged layer's
	// weights in place): projection weights of layer high; projection biases, norms
	// and everything else of layer low. (Measured: on gpt2_6, window 1..4 gives the
	// recorded perplexity only with layer low's biases.)
	Code Rule = "code"
	// Mean averages the window's projection weights and biases; norms from layer low.
	Mean Rule = "mean"
	// Drop keeps layer low unchanged (the other layers of the window are removed).
	Drop Rule = "drop"
)

// Rules lists the merge rules.
var Rules = []Rule{Paper, Code, Mean, Drop}

// ParseRule parses a rule name.
func ParseRule(s string) (Rule, error) {
	for _, r := range Rules {
		if string(r) == s {
			return r, nil
		}
	}
	names := make([]string, len(Rules))
	for i, r := range Rules {
		names[i] = string(r)
	}
	return "", fmt.Errorf("merge rule %q: want one of %s", s, strings.Join(names, ", "))
}

// Window is a run of consecutive layers [Low..High] (original indices, inclusive,
// slm's window type) merged into layer Low, and how: layers Low+1..High are
// removed and what read layer High's output reads the merged layer's output.
type Window struct {
	slm.Window
	// Rule overrides Plan.Rule for this window when set.
	Rule Rule
	// Repair, when set, folds a linear map into one projection of the merged layer.
	Repair *Repair
}

// String renders the window with its rule, if set ("1..4 paper"), and
// whether it is repaired; it replaces slm.Window's, which knows no rule.
func (w Window) String() string {
	s := w.Window.String()
	if w.Rule != "" {
		s += " " + string(w.Rule)
	}
	if w.Repair != nil {
		s += "+repair"
	}
	return s
}

// Repair is a linear map applied to the output of one projection of the merged
// layer, folded into its weights: y' = y·Matrix + Bias, where y is the
// projection's output (row vector of size out). Typically fitted by least squares
// on calibration activations (issue 8).
type Repair struct {
	// Slot is the projection weight's slot (discover.Param.Slot) in the layer.
	Slot int
	// Matrix is out×out, row-major.
	Matrix []float32
	// Bias (optional, size out) needs a bias slot on that projection.
	Bias []float32
}

// Plan says which layers to merge and which to remove.
type Plan struct {
	// Windows to merge; disjoint. A window with Low == High changes nothing.
	Windows []Window
	// Remove lists layers removed outright (ShortGPT and drop baselines); they may
	// not overlap the windows.
	Remove []int
	// Rule is the merge rule of windows that do not set their own.
	Rule Rule
}

// Meta is what the rewrite records in the model's metadata_props (keys
// "onnxslm.*"); the caller fills it, the rewrite adds what it did.
type Meta struct {
	// Version is the tool version ("onnxslm.version").
	Version string
	// Method is the pruning method ("onnxslm.method": slm, slm_authors_code, shortgpt, ...).
	Method string
	// Threshold is the similarity threshold used, if any ("onnxslm.threshold").
	Threshold *float64
	// Extra are further entries; keys without the "onnxslm." prefix get it.
	Extra map[string]string
	// Omit writes no onnxslm.* metadata (existing entries are kept).
	Omit bool
}

// Options controls a rewrite.
type Options struct {
	// KeepKVNumbers keeps the original layer numbers in the names of the KV-cache
	// inputs and outputs (past_key_values.7.key stays so named) instead of
	// renumbering the kept layers 0..L'−1.
	KeepKVNumbers bool
	Meta          Meta
	// Check validates the graph after every pass (tests turn it on; the final
	// graph is always validated).
	Check bool
	// DumpAfter names a pass after which the graph is written to DumpTo as text
	// ("*" for every pass). See Passes for the names.
	DumpAfter string
	DumpTo    io.Writer
	// Timings, when non-nil, receives each pass's duration.
	Timings *[]graph.PassTiming
	// KeepMergedFloat keeps a merged window's quantized projections float (a
	// MatMul of the fused dequantized weights) instead of quantizing them
	// again with the original bits, block size and symmetry.
	KeepMergedFloat bool
	// BLAS computes the matrix products of repairs (Window.Repair); nil means
	// gonum's pure-Go implementation. package runtime's BLAS is faster.
	BLAS blas.Float32
}

// Result is a rewritten model and what was done.
type Result struct {
	Model *pb.ModelProto
	// KeptFrom holds, for each layer of the result, its original index.
	KeptFrom []int
	// Renamed maps graph input and output names that changed (KV-cache renumbering)
	// from old to new.
	Renamed map[string]string
	// LayersBefore and LayersAfter count decoder layers.
	LayersBefore, LayersAfter int
	// NewInitializers names the tensors the merge computed, in order.
	NewInitializers []string
	// Requantized lists the merged quantized projections and how far their
	// re-quantized weights are from the float fusion.
	Requantized []Requantized
}

// Merge returns a copy of m with the plan's windows merged and layers removed. s
// must be discover.Find(m). m is not modified; the result shares its untouched
// tensors, so Merge is cheap enough to call for every candidate of a search.
func Merge(m *pb.ModelProto, s *discover.Stack, plan Plan, opt Options) (*Result, error) {
	w, err := newMerger(m, s, plan, opt)
	if err != nil {
		return nil, err
	}
	cfg := graph.PassConfig{Check: opt.Check, DumpAfter: opt.DumpAfter, DumpTo: opt.DumpTo, Timings: opt.Timings}
	if err := graph.Run(w.g, w.passes(), cfg); err != nil {
		return nil, fmt.Errorf("rewrite: %w", err)
	}
	w.res.Model = w.g.Model()
	return w.res, nil
}

// RemoveLayers returns a copy of m without the given layers (original indices).
func RemoveLayers(m *pb.ModelProto, s *discover.Stack, layers []int, opt Options) (*Result, error) {
	return Merge(m, s, Plan{Remove: layers, Rule: Drop}, opt)
}

// PassNames lists the rewrite's passes in the order they run.
func PassNames() []string {
	var names []string
	for _, p := range passTable {
		names = append(names, p.name)
	}
	return names
}

type merger struct {
	g       *graph.Graph
	s       *discover.Stack
	plan    Plan
	opt     Options
	nl      int
	removed []bool
	byIndex []*graph.Node
	inLayer []int // source node index -> layer, -1 shared
	res     *Result
}

// blas is the BLAS of the merge's matrix products.
func (w *merger) blas() blas.Float32 {
	if w.opt.BLAS != nil {
		return w.opt.BLAS
	}
	return gonum.Implementation{}
}

// pass is one step of the rewrite. Every pass always runs: none is optional
// (the merge without fusing is Rule Drop, the merge without metadata is
// Meta.Omit), so the table has no required/disabled column.
type pass struct {
	name string
	fn   func(*merger) error
}

// passTable is the rewrite pipeline, in order.
var passTable = []pass{
	{"fuse", (*merger).fuse},         // merged windows: new projection tensors for layer low
	{"drop", (*merger).drop},         // removed layers and their KV-cache inputs/outputs go; the stream skips them
	{"dce", (*merger).dce},           // dead nodes and unused initializers
	{"renumber", (*merger).renumber}, // KV-cache names numbered 0..L'-1
	{"sort", (*merger).sort},         // topological order for writing
	{"meta", (*merger).meta},         // metadata_props
	{"verify", (*merger).verify},     // the result is a valid graph
}

var passOrder = []graph.Constraint{
	{Before: "fuse", After: "drop"}, // fuse reads the window's layers before they go
	{Before: "drop", After: "dce"},
	{Before: "drop", After: "renumber"}, // the removed layers' names are free only then
	{Before: "dce", After: "sort"},
	{Before: "sort", After: "verify"},
}

func init() {
	var ps []graph.Pass
	for _, p := range passTable {
		ps = append(ps, graph.Pass{Name: p.name})
	}
	if err := graph.CheckOrder(ps, passOrder); err != nil {
		panic("rewrite: pass table: " + err.Error())
	}
}

func (w *merger) passes() []graph.Pass {
	ps := make([]graph.Pass, len(passTable))
	for i, p := range passTable {
		fn := p.fn
		ps[i] = graph.Pass{Name: p.name, Fn: func(*graph.Graph) error { return fn(w) }}
	}
	return ps
}

// stackGraph checks that s was found in m (discover.Find(m)) and returns m's
// graph, as each rewrite of a decoder stack starts.
func stackGraph(m *pb.ModelProto, s *discover.Stack) (*graph.Graph, error) {
	if s == nil || len(s.Layers) == 0 {
		return nil, fmt.Errorf("rewrite: no decoder stack given")
	}
	if got := len(m.GetGraph().GetNode()); got != s.NumNodes {
		return nil, fmt.Errorf("rewrite: the stack was found in another model (%d nodes, this one has %d)", s.NumNodes, got)
	}
	g, err := graph.FromModel(m)
	if err != nil {
		return nil, fmt.Errorf("rewrite: %w", err)
	}
	return g, nil
}

func newMerger(m *pb.ModelProto, s *discover.Stack, plan Plan, opt Options) (*merger, error) {
	g, err := stackGraph(m, s)
	if err != nil {
		return nil, err
	}
	w := &merger{g: g, s: s, plan: plan, opt: opt, nl: len(s.Layers), byIndex: slices.Clone(g.Nodes),
		inLayer: make([]int, len(g.Nodes))}
	for i := range w.inLayer {
		w.inLayer[i] = -1
	}
	for _, l := range s.Layers {
		for _, n := range l.Nodes {
			if n < 0 || n >= len(w.inLayer) {
				return nil, fmt.Errorf("rewrite: the stack was found in another model (layer %d lists node %d)", l.Index, n)
			}
			w.inLayer[n] = l.Index
		}
		if v := g.Value(l.Output); v == nil || v.Producer == nil || w.inLayer[v.Producer.Index] != l.Index {
			return nil, fmt.Errorf("rewrite: the stack was found in another model (layer %d's output %q)", l.Index, l.Output)
		}
		for _, p := range l.Params {
			if v := g.Value(p.Name); v == nil || (graph.Constant(v) == nil && v.Init == nil) {
				return nil, fmt.Errorf("rewrite: the stack was found in another model (layer %d's tensor %q)", l.Index, p.Name)
			}
			for _, u := range p.Uses {
				ok := u.Node >= 0 && u.Node < len(g.Nodes) && u.Input >= 0 && u.Input < len(g.Nodes[u.Node].Inputs)
				for _, vi := range u.Via {
					ok = ok && vi >= 0 && vi < len(g.Nodes) && len(g.Nodes[vi].Inputs) > 0 && len(g.Nodes[vi].Outputs) > 0
				}
				if !ok {
					return nil, fmt.Errorf("rewrite: the stack was found in another model (layer %d's slot %d)", l.Index, p.Slot)
				}
			}
		}
	}
	if err := w.checkPlan(); err != nil {
		return nil, err
	}
	w.res = &Result{LayersBefore: w.nl, Renamed: map[string]string{}}
	for i, r := range w.removed {
		if !r {
			w.res.KeptFrom = append(w.res.KeptFrom, i)
		}
	}
	w.res.LayersAfter = len(w.res.KeptFrom)
	return w, nil
}

// checkPlan validates the windows and removals and computes the removed layers.
func (w *merger) checkPlan() error {
	w.removed = make([]bool, w.nl)
	inWindow := make([]int, w.nl)
	for i := range inWindow {
		inWindow[i] = -1
	}
	if w.plan.Rule != "" {
		if _, err := ParseRule(string(w.plan.Rule)); err != nil {
			return fmt.Errorf("rewrite: %w", err)
		}
	}
	for wi, win := range w.plan.Windows {
		if win.Low < 0 || win.High >= w.nl || win.Low > win.High {
			return fmt.Errorf("rewrite: window %d..%d: want 0 <= low <= high < %d", win.Low, win.High, w.nl)
		}
		rule := w.rule(win)
		if rule == "" {
			return fmt.Errorf("rewrite: window %d..%d: no merge rule (set Plan.Rule or Window.Rule)", win.Low, win.High)
		}
		if _, err := ParseRule(string(rule)); err != nil {
			return fmt.Errorf("rewrite: window %d..%d: %w", win.Low, win.High, err)
		}
		for i := win.Low; i <= win.High; i++ {
			if inWindow[i] >= 0 {
				o := w.plan.Windows[inWindow[i]]
				return fmt.Errorf("rewrite: windows %d..%d and %d..%d overlap", o.Low, o.High, win.Low, win.High)
			}
			inWindow[i] = wi
			if i > win.Low {
				w.removed[i] = true
			}
		}
		if r := win.Repair; r != nil {
			if r.Slot < 0 || r.Slot >= len(w.s.Layers[win.Low].Params) {
				return fmt.Errorf("rewrite: window %d..%d: repair slot %d out of range", win.Low, win.High, r.Slot)
			}
		}
	}
	for _, i := range w.plan.Remove {
		if i < 0 || i >= w.nl {
			return fmt.Errorf("rewrite: remove layer %d: want 0..%d", i, w.nl-1)
		}
		if wi := inWindow[i]; wi >= 0 {
			o := w.plan.Windows[wi]
			return fmt.Errorf("rewrite: layer %d is both removed and in window %d..%d", i, o.Low, o.High)
		}
		w.removed[i] = true
	}
	if !slices.Contains(w.removed, false) {
		return fmt.Errorf("rewrite: the plan removes all %d layers", w.nl)
	}
	return nil
}

func (w *merger) rule(win Window) Rule {
	if win.Rule != "" {
		return win.Rule
	}
	return w.plan.Rule
}

// drop removes the removed layers: what read the output of each run of removed
// layers reads the input of the run instead, and the layers' nodes and per-layer
// graph inputs and outputs (KV cache) go.
func (w *merger) drop() error {
	g := w.g
	for a := 0; a < w.nl; a++ {
		if !w.removed[a] {
			continue
		}
		b := a
		for b+1 < w.nl && w.removed[b+1] {
			b++
		}
		in := g.Value(w.s.Layers[a].Input)
		out := g.Value(w.s.Layers[b].Output)
		if in == nil || out == nil {
			return fmt.Errorf("layers %d..%d: stream values %q, %q not found", a, b, w.s.Layers[a].Input, w.s.Layers[b].Output)
		}
		g.ReplaceUses(out, in)
		if w.s.Branch != nil {
			if err := w.dropBranch(a, b); err != nil {
				return err
			}
		}
		a = b
	}
	firstKept := w.res.KeptFrom[0]
	dead := map[*graph.Node]bool{}
	for i, l := range w.s.Layers {
		if !w.removed[i] {
			continue
		}
		for _, name := range l.Present {
			if v := g.Value(name); v != nil {
				g.RemoveOutput(v)
			}
		}
		for pi, name := range l.Past {
			v := g.Value(name)
			if v == nil {
				continue
			}
			if err := w.keepInputCastReaders(v, i, firstKept, pi); err != nil {
				return err
			}
			if !w.readOutsideLayer(v, i) {
				continue
			}
			// Shared nodes read it (the past length from its shape): they read the same
			// slot of a kept layer instead.
			kept := w.s.Layers[firstKept].Past
			if pi >= len(kept) {
				return fmt.Errorf("layer %d's input %q is read outside the layer and layer %d has no input in its place", i, name, firstKept)
			}
			for _, c := range slices.Clone(v.Consumers) {
				if c.Index < 0 || w.inLayer[c.Index] != i {
					for j, x := range c.Inputs {
						if x == v {
							g.SetInput(c, j, g.Value(kept[pi]))
						}
					}
				}
			}
		}
		for _, n := range l.Nodes {
			dead[w.byIndex[n]] = true
		}
	}
	for n := range dead {
		for _, o := range n.Outputs {
			if o == nil {
				continue
			}
			for _, c := range o.Consumers {
				if !dead[c] {
					return fmt.Errorf("%s reads %q, computed in removed layer %d", c, o.Name, w.inLayer[n.Index])
				}
			}
			if o.IsOutput() {
				return fmt.Errorf("graph output %q is computed in removed layer %d", o.Name, w.inLayer[n.Index])
			}
		}
	}
	g.RemoveNodes(dead)
	for i, l := range w.s.Layers {
		if !w.removed[i] {
			continue
		}
		for _, name := range l.Past {
			if v := g.Value(name); v != nil {
				if len(v.Consumers) > 0 {
					return fmt.Errorf("input %q of removed layer %d is still read by %s", name, i, v.Consumers[0])
				}
				g.RemoveInput(v)
			}
		}
	}
	return nil
}

// renumber renames the kept layers' per-layer inputs and outputs so that the
// result has the interface of an L'-layer export (past_key_values.0..L'-1.*).
func (w *merger) renumber() error {
	g := w.g
	if w.opt.KeepKVNumbers {
		return nil
	}
	for j, i := range w.res.KeptFrom {
		if i == j {
			continue
		}
		l := w.s.Layers[i]
		for _, name := range append(slices.Clip(l.Past), l.Present...) {
			nn, ok := renumber(name, i, j)
			if !ok {
				continue
			}
			v := g.Value(name)
			if v == nil {
				continue
			}
			if g.Has(nn) {
				return fmt.Errorf("renumber %q to %q: the name is taken", name, nn)
			}
			if err := g.Rename(v, nn); err != nil {
				return err
			}
			w.res.Renamed[name] = nn
		}
	}
	return nil
}

// keepInputCastReaders: where removed layer i converts its input v by a
// Cast that shared nodes read too (the past length from the shape of
// past_key_values.0.key_fp16 in transformers.js's float16 models), those
// readers read the Cast of the same slot of the first kept layer instead.
func (w *merger) keepInputCastReaders(v *graph.Value, i, firstKept, pi int) error {
	castOf := func(v *graph.Value, layer int) *graph.Node {
		for _, c := range v.Consumers {
			if c.Op == "Cast" && c.Index >= 0 && w.inLayer[c.Index] == layer && len(c.Outputs) == 1 && c.Outputs[0] != nil {
				return c
			}
		}
		return nil
	}
	c := castOf(v, i)
	if c == nil || !w.readOutsideLayer(c.Outputs[0], i) {
		return nil
	}
	var kc *graph.Node
	if kept := w.s.Layers[firstKept].Past; pi < len(kept) {
		if kv := w.g.Value(kept[pi]); kv != nil {
			kc = castOf(kv, firstKept)
		}
	}
	if kc == nil {
		return fmt.Errorf("layer %d's Cast of %q is read outside the layer and layer %d has no Cast in its place", i, v.Name, firstKept)
	}
	for _, r := range slices.Clone(c.Outputs[0].Consumers) {
		if r.Index < 0 || w.inLayer[r.Index] != i {
			for j, x := range r.Inputs {
				if x == c.Outputs[0] {
					w.g.SetInput(r, j, kc.Outputs[0])
				}
			}
		}
	}
	return nil
}

// readOutsideLayer reports whether a node outside layer i reads v.
func (w *merger) readOutsideLayer(v *graph.Value, i int) bool {
	for _, c := range v.Consumers {
		if c.Index < 0 || w.inLayer[c.Index] != i {
			return true
		}
	}
	return false
}

// renumber replaces the layer number from by to in name when it occurs exactly
// once as a whole number ("past_key_values.3.key" -> "past_key_values.2.key").
func renumber(name string, from, to int) (string, bool) {
	f := strconv.Itoa(from)
	at := -1
	for i := 0; i+len(f) <= len(name); i++ {
		if name[i:i+len(f)] != f {
			continue
		}
		if (i > 0 && isDigit(name[i-1])) || (i+len(f) < len(name) && isDigit(name[i+len(f)])) {
			continue
		}
		if at >= 0 {
			return name, false // ambiguous
		}
		at = i
	}
	if at < 0 {
		return name, false
	}
	return name[:at] + strconv.Itoa(to) + name[at+len(f):], true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (w *merger) dce() error {
	w.g.RemoveDead()
	return nil
}

func (w *merger) sort() error { return w.g.Sort() }

func (w *merger) verify() error { return w.g.Validate() }

// meta records what was done in metadata_props.
func (w *merger) meta() error {
	m := w.opt.Meta
	if m.Omit {
		return nil
	}
	var kept []*pb.StringStringEntryProto
	for _, kv := range w.g.Meta {
		if !strings.HasPrefix(kv.GetKey(), "onnxslm.") {
			kept = append(kept, kv)
		}
	}
	add := func(k, v string) {
		kept = append(kept, &pb.StringStringEntryProto{Key: proto.String("onnxslm." + k), Value: proto.String(v)})
	}
	js := func(x any) string {
		b, _ := json.Marshal(x)
		return string(b)
	}
	if m.Version != "" {
		add("version", m.Version)
	}
	if m.Method != "" {
		add("method", m.Method)
	}
	if w.plan.Rule != "" {
		add("merge", string(w.plan.Rule))
	}
	if m.Threshold != nil {
		add("threshold", strconv.FormatFloat(*m.Threshold, 'g', -1, 64))
	}
	windows := [][2]int{}
	var rules []string
	var repaired [][2]int
	perWindow := false
	for _, win := range w.plan.Windows {
		windows = append(windows, [2]int{win.Low, win.High})
		rules = append(rules, string(w.rule(win)))
		if win.Rule != "" && win.Rule != w.plan.Rule {
			perWindow = true
		}
		if win.Repair != nil {
			repaired = append(repaired, [2]int{win.Low, win.High})
		}
	}
	add("windows", js(windows))
	if perWindow {
		add("window_rules", js(rules))
	}
	if len(repaired) > 0 {
		add("repaired_windows", js(repaired))
	}
	if len(w.plan.Remove) > 0 {
		rm := slices.Clone(w.plan.Remove)
		sort.Ints(rm)
		add("removed", js(rm))
	}
	add("layers_before", strconv.Itoa(w.res.LayersBefore))
	add("layers_after", strconv.Itoa(w.res.LayersAfter))
	add("kept_from", js(w.res.KeptFrom))
	var extra []string
	for k := range m.Extra {
		extra = append(extra, k)
	}
	sort.Strings(extra)
	for _, k := range extra {
		add(strings.TrimPrefix(k, "onnxslm."), m.Extra[k])
	}
	w.g.Meta = kept
	return nil
}
