package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/onnxslm/onnxslm/internal/units"
	"github.com/onnxslm/onnxslm/modeldiff"
)

func init() {
	register(&command{
		Name:    "diff",
		Args:    "A.onnx B.onnx",
		Summary: "Compare two ONNX models (I/O, ops, initializers, sizes, metadata, opsets; decoder layers kept, removed, fused). Exit status 0 whether or not they differ.",
		Flags: func(fs *pflag.FlagSet) func(ctx context.Context, io *stdio, args []string) error {
			o := &diffFlags{}
			fs.BoolVar(&o.json, "json", false, "print one JSON object on stdout (every node and initializer by name)")
			fs.IntVar(&o.limit, "limit", 20, "list at most this many items per section in the text output (0: all)")
			fs.BoolVarP(&o.quiet, "quiet", "q", false, "no progress on stderr")
			fs.BoolVarP(&o.verbose, "verbose", "v", false, verboseUsage)
			return func(ctx context.Context, io *stdio, args []string) error {
				if len(args) != 2 {
					return usagef("diff takes two models A and B (paths or builtin:NAME), got %d arguments", len(args))
				}
				if o.limit < 0 {
					return usagef("--limit must not be negative, got %d", o.limit)
				}
				return runDiff(ctx, io, args[0], args[1], o)
			}
		},
	})
}

type diffFlags struct {
	json    bool
	limit   int
	quiet   bool
	verbose bool
}

func runDiff(ctx context.Context, io *stdio, argA, argB string, f *diffFlags) error {
	rep := newReporter(io, f.quiet, f.verbose)
	a, err := loadReported(rep, argA)
	if err != nil {
		return err
	}
	b, err := loadReported(rep, argB)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	cmp := rep.Start("compare", 0)
	d, err := modeldiff.Compare(a, b)
	cmp.Done()
	if err != nil {
		return fmt.Errorf("diff %s %s: %w", argA, argB, err)
	}
	if f.json {
		enc := json.NewEncoder(io.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	return writeDiffText(io.Stdout, argA, argB, d, f.limit)
}

// writeDiffText prints d for people. Lists longer than limit (0: no limit)
// are cut with a pointer to --json.
func writeDiffText(w io.Writer, nameA, nameB string, d *modeldiff.Diff, limit int) error {
	p := &printer{w: w, limit: limit}
	if d.Identical {
		p.line("no differences")
		if !sameFiles(d.A, d.B) {
			p.line("(stored differently: A %s, B %s)", fileDesc(d.A), fileDesc(d.B))
		}
		return p.err
	}
	p.line("A  %s  (%s)", nameA, modelDesc(d.A))
	p.line("B  %s  (%s)", nameB, modelDesc(d.B))
	p.line("")

	tw := p.table()
	for _, h := range d.Header {
		fmt.Fprintf(tw, "%s\t%s → %s\n", h.Field, quoteIfEmpty(h.A), quoteIfEmpty(h.B))
	}
	for _, o := range d.Opsets {
		fmt.Fprintf(tw, "opset %s\t%s → %s\n", o.Domain, opsetVersion(o.A), opsetVersion(o.B))
	}
	fmt.Fprintf(tw, "parameters\t%s → %s%s\n", groupDigits(d.A.Parameters), groupDigits(d.B.Parameters), percent(d.A.Parameters, d.B.Parameters))
	fmt.Fprintf(tw, "file size\t%s → %s%s\n", fileDesc(d.A), fileDesc(d.B), percent(d.A.FileBytes, d.B.FileBytes))
	p.flush(tw)

	p.values("inputs", d.Inputs)
	p.values("outputs", d.Outputs)

	n := d.Nodes
	if len(n.Ops)+len(n.Added)+len(n.Removed)+len(n.Changed) > 0 {
		p.line("\nnodes  %s → %s (%s): %d removed, %d added, %d changed (names: --json)", groupDigits(int64(d.A.Nodes)), groupDigits(int64(d.B.Nodes)),
			signed(int64(d.B.Nodes-d.A.Nodes)), len(n.Removed), len(n.Added), len(n.Changed))
		if len(n.Ops) > 0 {
			tw := p.table()
			fmt.Fprintf(tw, "  op\tA\tB\tchange\n")
			for _, o := range n.Ops {
				fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\n", o.Op, o.A, o.B, signed(int64(o.B-o.A)))
			}
			p.flush(tw)
		}
	}

	p.initializers(d)
	p.metadata(d.Metadata)
	if len(d.Other) > 0 {
		p.line("\nalso differ: %s", strings.Join(d.Other, ", "))
	}
	p.decoder(d)
	p.widths(d.Widths)
	return p.err
}

type printer struct {
	w     io.Writer
	limit int
	err   error
}

func (p *printer) line(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format+"\n", args...)
	}
}

func (p *printer) table() *tabwriter.Writer { return tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0) }

func (p *printer) flush(tw *tabwriter.Writer) {
	if err := tw.Flush(); err != nil && p.err == nil {
		p.err = err
	}
}

// cut returns how many of n items to list, and prints the "more" line after.
func (p *printer) cut(n int) int {
	if p.limit > 0 && n > p.limit {
		return p.limit
	}
	return n
}

func (p *printer) more(n, shown int) {
	if n > shown {
		p.line("  ... %d more (see --json)", n-shown)
	}
}

func (p *printer) values(title string, v modeldiff.ValueDiff) {
	if len(v.Added)+len(v.Removed)+len(v.Changed) == 0 {
		return
	}
	p.line("\n%s", title)
	tw := p.table()
	for _, x := range v.Removed {
		fmt.Fprintf(tw, "  - %s\t%s %s\n", x.Name, x.DType, shapeText(x.Shape))
	}
	for _, x := range v.Added {
		fmt.Fprintf(tw, "  + %s\t%s %s\n", x.Name, x.DType, shapeText(x.Shape))
	}
	for _, c := range v.Changed {
		fmt.Fprintf(tw, "  ~ %s\t%s %s → %s %s\n", c.Name, c.A.DType, shapeText(c.A.Shape), c.B.DType, shapeText(c.B.Shape))
	}
	p.flush(tw)
}

func (p *printer) initializers(d *modeldiff.Diff) {
	in := d.Initializers
	if len(in.Added)+len(in.Removed)+len(in.Changed) == 0 {
		return
	}
	p.line("\ninitializers  %d → %d: %d removed, %d added, %d changed in place, %d replaced by a new tensor",
		d.A.Initializers, d.B.Initializers, len(in.Removed), len(in.Added), len(in.Changed), len(in.Replaced))
	replacedA, replacedB := map[string]bool{}, map[string]bool{}
	for _, r := range in.Replaced {
		replacedA[r.A.Name], replacedB[r.B.Name] = true, true
	}
	var removed, added []modeldiff.Tensor
	for _, t := range in.Removed {
		if !replacedA[t.Name] {
			removed = append(removed, t)
		}
	}
	for _, t := range in.Added {
		if !replacedB[t.Name] {
			added = append(added, t)
		}
	}
	listCut(p, in.Changed, func(w io.Writer, c modeldiff.TensorChange) {
		fmt.Fprintf(w, "  ~ %s\t%s\n", c.Name, tensorChangeText(c.A, c.B, c.Change))
	})
	listCut(p, in.Replaced, func(w io.Writer, r modeldiff.Replacement) {
		fmt.Fprintf(w, "  ~ %s → %s\t%s\n", r.A.Name, r.B.Name, tensorChangeText(r.A, r.B, r.Change))
	})
	listCut(p, removed, func(w io.Writer, t modeldiff.Tensor) { fmt.Fprintf(w, "  - %s\t%s %v\n", t.Name, t.DType, t.Dims) })
	listCut(p, added, func(w io.Writer, t modeldiff.Tensor) { fmt.Fprintf(w, "  + %s\t%s %v\n", t.Name, t.DType, t.Dims) })
}

// listCut prints items as a table, a line each, cut at p's limit with a
// "more" line after.
func listCut[T any](p *printer, items []T, line func(w io.Writer, x T)) {
	tw := p.table()
	k := p.cut(len(items))
	for _, x := range items[:k] {
		line(tw, x)
	}
	p.flush(tw)
	p.more(len(items), k)
}

func (p *printer) metadata(ms []modeldiff.MetadataChange) {
	if len(ms) == 0 {
		return
	}
	p.line("\nmetadata")
	tw := p.table()
	for _, m := range ms {
		switch {
		case m.A == nil:
			fmt.Fprintf(tw, "  + %s\t%s\n", m.Key, clip(*m.B))
		case m.B == nil:
			fmt.Fprintf(tw, "  - %s\t%s\n", m.Key, clip(*m.A))
		default:
			fmt.Fprintf(tw, "  ~ %s\t%s → %s\n", m.Key, clip(*m.A), clip(*m.B))
		}
	}
	p.flush(tw)
}

func (p *printer) decoder(d *modeldiff.Diff) {
	if d.Decoder == nil {
		switch {
		case d.A.Layers > 0 && d.B.NotDecoder != "":
			p.line("\ndecoder layers  A has %d; B is not a decoder stack (%s)", d.A.Layers, d.B.NotDecoder)
		case d.B.Layers > 0 && d.A.NotDecoder != "":
			p.line("\ndecoder layers  B has %d; A is not a decoder stack (%s)", d.B.Layers, d.A.NotDecoder)
		}
		return
	}
	dd := d.Decoder
	identity := dd.KeptFromSource != "none" && dd.LayersA == dd.LayersB && len(dd.Fused) == 0 && len(dd.RemovedLayers) == 0
	for i, k := range dd.KeptFrom {
		identity = identity && i == k
	}
	if identity {
		return
	}
	p.line("\ndecoder layers  %d → %d", dd.LayersA, dd.LayersB)
	tw := p.table()
	switch dd.KeptFromSource {
	case "metadata":
		fmt.Fprintf(tw, "  kept from\t%s (B's metadata onnxslm.kept_from)\n", intList(dd.KeptFrom, " "))
	case "weights":
		fmt.Fprintf(tw, "  kept from\t%s (matched by parameter values)\n", intList(dd.KeptFrom, " "))
	default:
		fmt.Fprintf(tw, "  kept from\tunknown: no layer of B shares a parameter tensor with a layer of A\n")
	}
	if len(dd.KeptFrom) > 0 {
		removed := "(none)"
		if len(dd.RemovedLayers) > 0 {
			removed = intList(dd.RemovedLayers, ", ")
		}
		fmt.Fprintf(tw, "  removed layers\t%s\n", removed)
	}
	for i, f := range dd.Fused {
		label := ""
		if i == 0 {
			label = "fused"
		}
		from := fmt.Sprintf("layer %d", f.From)
		if f.Window != nil {
			from = fmt.Sprintf("layers %d..%d", f.Window[0], f.Window[1])
		}
		newN := 0
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, t := range f.Tensors {
			if t.New {
				newN++
			}
			if t.RelChange != nil {
				lo, hi = math.Min(lo, *t.RelChange), math.Max(hi, *t.RelChange)
			}
		}
		rel := ""
		switch {
		case lo == hi:
			rel = fmt.Sprintf("; rel. change %.4f", lo)
		case lo < hi:
			rel = fmt.Sprintf("; rel. change %.4f–%.4f", lo, hi)
		}
		fmt.Fprintf(tw, "  %s\tlayer %d ← %s (%d tensors differ from layer %d's, %d new%s)\n", label, f.Layer, from, len(f.Tensors), f.From, newN, rel)
	}
	p.flush(tw)
}

func modelDesc(s modeldiff.Summary) string {
	parts := []string{}
	if s.Layers > 0 {
		parts = append(parts, fmt.Sprintf("%d layers", s.Layers))
	}
	parts = append(parts, fmt.Sprintf("%s nodes", groupDigits(int64(s.Nodes))), fmt.Sprintf("%s parameters", groupDigits(s.Parameters)), fileDesc(s))
	return strings.Join(parts, ", ")
}

func fileDesc(s modeldiff.Summary) string {
	switch len(s.Files) {
	case 0:
		return units.Bytes(uint64(s.FileBytes)) + " serialized"
	case 1:
		return units.Bytes(uint64(s.FileBytes)) + " in 1 file"
	}
	return fmt.Sprintf("%s in %d files", units.Bytes(uint64(s.FileBytes)), len(s.Files))
}

func sameFiles(a, b modeldiff.Summary) bool {
	return a.FileBytes == b.FileBytes && len(a.Files) == len(b.Files)
}

func percent(a, b int64) string {
	if a == b || a == 0 {
		return ""
	}
	return fmt.Sprintf(" (%+.1f%%)", 100*(float64(b)/float64(a)-1))
}

func signed(n int64) string {
	if n > 0 {
		return "+" + groupDigits(n)
	}
	return groupDigits(n)
}

func opsetVersion(v int64) string {
	if v == 0 {
		return "(none)"
	}
	return fmt.Sprint(v)
}

func quoteIfEmpty(s string) string {
	if s == "" {
		return `""`
	}
	return clip(s)
}

// clip shortens a long value for one line of text.
func clip(s string) string {
	s = strings.ReplaceAll(s, "\n", `\n`)
	if r := []rune(s); len(r) > 60 {
		return string(r[:57]) + "..."
	}
	return s
}

func shapeText(dims []modeldiff.Dim) string {
	if dims == nil {
		return "(rank unknown)"
	}
	s := make([]string, len(dims))
	for i, d := range dims {
		s[i] = d.String()
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// tensorChangeText says how tensor a became b: a new dtype or shape, or the
// size of the change of its values.
func tensorChangeText(a, b modeldiff.Tensor, c modeldiff.Change) string {
	if a.DType != b.DType || !slices.Equal(a.Dims, b.Dims) {
		s := fmt.Sprintf("%s %v → %s %v", a.DType, a.Dims, b.DType, b.Dims)
		if c.RelChange != nil || c.AbsChange != nil {
			s += ", " + changeText(c)
		}
		return s
	}
	return changeText(c)
}

func changeText(c modeldiff.Change) string {
	switch {
	case c.RelChange != nil:
		return fmt.Sprintf("rel. change %.4f", *c.RelChange)
	case c.AbsChange != nil:
		return fmt.Sprintf("abs. change %.4g (A's norm is 0)", *c.AbsChange)
	}
	return "values differ"
}

func intList(xs []int, sep string) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		if x < 0 {
			s[i] = "?"
		} else {
			s[i] = fmt.Sprint(x)
		}
	}
	return strings.Join(s, sep)
}

// widths prints the layers whose MLP width or query heads changed.
func (p *printer) widths(w *modeldiff.WidthDiff) {
	if w == nil {
		return
	}
	src := ""
	if w.Source == "metadata" {
		src = " (B's metadata onnxslm.mlp_widths, onnxslm.attn_heads)"
	}
	p.line("\nMLP widths and attention heads%s", src)
	tw := p.table()
	for _, l := range w.Layers {
		heads := ""
		if l.HeadsA != l.HeadsB {
			heads = fmt.Sprintf(", %d → %d heads", l.HeadsA, l.HeadsB)
		}
		fmt.Fprintf(tw, "  layer %d\t← layer %d: %d → %d channels%s\n", l.Layer, l.From, l.A, l.B, heads)
	}
	p.flush(tw)
}
