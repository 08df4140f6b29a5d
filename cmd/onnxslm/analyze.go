package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/onnxslm/onnxslm/heatmap"
	"github.com/onnxslm/onnxslm/internal/builtin"
	"github.com/onnxslm/onnxslm/prune"
	"github.com/onnxslm/onnxslm/runtime"
)

func init() {
	register(&command{
		Name:    "analyze",
		Args:    "MODEL",
		Summary: "Show why layers would merge: CKA of layer outputs (table, --png heat map), Block Influence, SLM windows by threshold.",
		Flags: func(fs *pflag.FlagSet) func(ctx context.Context, io *stdio, args []string) error {
			o := &analyzeFlags{}
			o.calib = addCalibFlags(fs)
			fs.StringVar(&o.png, "png", "", "write the CKA matrix as a PNG heat map to this file")
			fs.StringVar(&o.kernel, "kernel", string(prune.KernelLinear), "CKA kernel: linear, or rbf (bandwidth: --rbf-factor × the median distance)")
			fs.Float64Var(&o.rbfFactor, "rbf-factor", 1, "RBF bandwidth as a multiple of the median pairwise distance (--kernel rbf)")
			fs.Float64SliceVar(&o.thresholds, "thresholds", prune.DefaultThresholds, "thresholds at which to run the SLM loop (paper merge rule)")
			fs.BoolVar(&o.json, "json", false, "print one JSON object on stdout instead of the tables")
			fs.IntVar(&o.batch, "batch", 0, "calibration sequences per forward pass (0: 8)")
			fs.IntVar(&o.threads, "threads", 0, "goroutines per kernel (0: all cores)")
			fs.BoolVarP(&o.quiet, "quiet", "q", false, "no progress or messages on stderr")
			fs.BoolVarP(&o.verbose, "verbose", "v", false, verboseUsage)
			return func(ctx context.Context, io *stdio, args []string) error {
				if len(args) != 1 {
					return usagef("analyze takes one MODEL (a path or builtin:NAME), got %d arguments", len(args))
				}
				o.rbfGiven = fs.Changed("rbf-factor")
				return runAnalyze(ctx, io, args[0], o)
			}
		},
	})
}

type analyzeFlags struct {
	calib      *calibFlags
	png        string
	kernel     string
	rbfFactor  float64
	rbfGiven   bool // --rbf-factor was given (the default goes with --kernel rbf only)
	thresholds []float64
	json       bool
	batch      int
	threads    int
	quiet      bool
	verbose    bool
}

// analyzeReport is what `onnxslm analyze --json` prints: one object.
type analyzeReport struct {
	Model       string              `json:"model"`
	Layers      int                 `json:"layers"`
	Kernel      string              `json:"kernel"`
	Calibration analyzeCalibration  `json:"calibration"`
	CKA         [][]float64         `json:"cka"`
	AdjacentCKA []float64           `json:"adjacent_cka"`
	BlockInfl   []float64           `json:"block_influence"`
	Thresholds  []float64           `json:"thresholds"`
	Windows     map[string]windowAt `json:"windows_by_threshold"`
	Candidates  int                 `json:"candidates_evaluated"`
	CandSeconds float64             `json:"candidate_seconds"`
	WallSeconds float64             `json:"wall_seconds"`
	PNG         string              `json:"png,omitempty"`
}

type analyzeCalibration struct {
	Source    string `json:"source"`
	Sequences int    `json:"sequences"`
	SeqLen    int    `json:"seq_len"`
	Tokens    int    `json:"tokens"`
}

// windowAt is the SLM decision at one threshold (the key of windows_by_threshold).
type windowAt struct {
	Windows    [][2]int          `json:"windows"`
	Layers     int               `json:"layers"`
	Similarity float64           `json:"similarity"`
	Trace      []prune.TraceStep `json:"trace"`
}

func runAnalyze(ctx context.Context, io *stdio, modelArg string, f *analyzeFlags) error {
	kernel := prune.Kernel(f.kernel)
	ths := []float64{} // not nil: an empty --thresholds is a mistake, not the defaults
	seen := map[float64]bool{}
	for _, th := range f.thresholds {
		if !seen[th] {
			seen[th] = true
			ths = append(ths, th)
		}
	}
	opts := prune.AnalyzeOptions{
		Batch:      f.batch,
		Kernel:     kernel,
		Thresholds: ths,
		Runtime:    runtime.Options{Threads: f.threads},
	}
	if f.rbfGiven {
		opts.RBFFactor = f.rbfFactor
	}
	if err := opts.Check(); err != nil {
		return analyzeUsage(err)
	}

	rep := newReporter(io, f.quiet, f.verbose)
	m, err := loadReported(rep, modelArg)
	if err != nil {
		return err
	}
	boundMemory(m, &opts.Runtime)
	rows, from, err := f.calib.calibrationFor(modelArg, m.Proto, opts.Runtime, f.quiet, rep.Logf, "results")
	if err != nil {
		return err
	}
	opts.Calibration = rows
	opts.Progress = &progressAdapter{r: rep}
	a, err := prune.Analyze(ctx, m.Proto, opts)
	if err != nil {
		return runError(err, analyzeFlagOf, modelArg)
	}
	r := newAnalyzeReport(modelArg, from, ths, a)
	if f.png != "" {
		factor := opts.RBFFactor
		if factor == 0 {
			factor = 1
		}
		err := heatmap.WriteFile(f.png, a.CKA, heatmap.Options{
			Title: fmt.Sprintf("%s: %s CKA of layer outputs (calib %d×%d)", modelName(modelArg), kernelTitle(kernel, factor),
				a.Calibration.Sequences, a.Calibration.SeqLen),
			XLabel: "layer",
			YLabel: "layer",
		})
		if err != nil {
			return fmt.Errorf("heat map %s: %w", f.png, err)
		}
		r.PNG = f.png
		if !f.quiet {
			rep.Logf("onnxslm: wrote the heat map to %s", f.png)
		}
	}
	if f.json {
		enc := json.NewEncoder(io.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return writeAnalyzeText(io.Stdout, r)
}

func newAnalyzeReport(modelArg, from string, ths []float64, a *prune.Analysis) *analyzeReport {
	r := &analyzeReport{
		Model:  modelArg,
		Layers: a.Layers,
		Kernel: a.Kernel,
		Calibration: analyzeCalibration{
			Source: from, Sequences: a.Calibration.Sequences, SeqLen: a.Calibration.SeqLen, Tokens: a.Calibration.Tokens,
		},
		CKA:         a.CKA,
		AdjacentCKA: a.AdjacentCKA,
		BlockInfl:   a.BlockInfluence,
		Thresholds:  ths,
		Windows:     map[string]windowAt{},
		Candidates:  a.Candidates,
		CandSeconds: a.CandidateSeconds,
		WallSeconds: a.WallSeconds,
	}
	for _, tw := range a.Windows {
		r.Windows[thresholdKey(tw.Threshold)] = windowAt{Windows: tw.Windows, Layers: tw.Layers, Similarity: tw.Similarity, Trace: tw.Trace}
	}
	return r
}

func thresholdKey(th float64) string { return strconv.FormatFloat(th, 'g', -1, 64) }

// modelName is the short name of a model argument for titles: the file name
// without .onnx, or the built-in model's name.
func modelName(arg string) string {
	if builtin.IsBuiltin(arg) {
		return strings.TrimPrefix(arg, "builtin:")
	}
	return strings.TrimSuffix(filepath.Base(arg), ".onnx")
}

func kernelTitle(k prune.Kernel, factor float64) string {
	if k == prune.KernelRBF {
		return fmt.Sprintf("RBF (σ = %g × median distance)", factor)
	}
	return string(k)
}

func writeAnalyzeText(w io.Writer, r *analyzeReport) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "model\t%s\n", r.Model)
	fmt.Fprintf(tw, "layers\t%d\n", r.Layers)
	c := r.Calibration
	fmt.Fprintf(tw, "calibration\t%d sequences × %d tokens from %s\n", c.Sequences, c.SeqLen, c.Source)
	fmt.Fprintf(tw, "CKA kernel\t%s\n", r.Kernel)
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nCKA between layer outputs (row, column: layer)\n")
	writeMatrix(w, r.CKA)

	fmt.Fprintf(w, "\nper layer\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "layer\tCKA with next\tblock influence\t\n")
	for i := 0; i < r.Layers; i++ {
		next := "-"
		if i < len(r.AdjacentCKA) {
			next = fmt.Sprintf("%.4f", r.AdjacentCKA[i])
		}
		bi := "-"
		if i < len(r.BlockInfl) {
			bi = fmt.Sprintf("%.4f", r.BlockInfl[i])
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t\n", i, next, bi)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nSLM windows (paper merge rule) by threshold\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "threshold\tlayers\tsimilarity\twindows\n")
	for _, th := range r.Thresholds {
		wa := r.Windows[thresholdKey(th)]
		fmt.Fprintf(tw, "%s\t%d\t%.4f\t%s\n", thresholdKey(th), wa.Layers, wa.Similarity, windowList(wa.Windows))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%d candidate models run in %.1fs (%.1fs in all); similarity = mean cosine of final hidden states on %d calibration tokens\n",
		r.Candidates, r.CandSeconds, r.WallSeconds, c.Tokens)
	return err
}

// writeMatrix prints a square matrix compactly: three decimals up to 16
// columns, two (without the leading zero) beyond.
func writeMatrix(w io.Writer, m [][]float64) {
	wide := len(m) <= 16
	cell := func(v float64) string {
		if wide {
			return fmt.Sprintf("%6.3f", v)
		}
		s := fmt.Sprintf("%.2f", v)
		s = strings.TrimPrefix(s, "0")
		return fmt.Sprintf("%5s", s)
	}
	width := len(cell(0))
	lw := len(strconv.Itoa(max(len(m)-1, 0)))
	var b strings.Builder
	b.WriteString(strings.Repeat(" ", lw))
	for j := range m {
		fmt.Fprintf(&b, "%*d", width, j)
	}
	b.WriteByte('\n')
	for i, row := range m {
		fmt.Fprintf(&b, "%*d", lw, i)
		for _, v := range row {
			b.WriteString(cell(v))
		}
		b.WriteByte('\n')
	}
	io.WriteString(w, b.String())
}

// windowList writes windows as "5..6, 1..2", or "(none)".
func windowList(ws [][2]int) string {
	if len(ws) == 0 {
		return "(none)"
	}
	s := make([]string, len(ws))
	for i, w := range ws {
		s[i] = fmt.Sprintf("%d..%d", w[0], w[1])
	}
	return strings.Join(s, ", ")
}

// analyzeFlagOf names the flag that sets each field of prune.AnalyzeOptions.
var analyzeFlagOf = map[string]string{
	"Kernel":          "--kernel",
	"RBFFactor":       "--rbf-factor",
	"Thresholds":      "--thresholds",
	"Batch":           "--batch",
	"Runtime.Threads": "--threads",
	"Calibration":     "--calib",
}

// analyzeUsage turns a *prune.OptionError into a usage error that names the
// flags; other errors are returned as they are.
func analyzeUsage(err error) error { return optionUsage(err, analyzeFlagOf) }
