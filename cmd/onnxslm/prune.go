package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/prune"
	"github.com/onnxslm/onnxslm/rewrite"
	"github.com/onnxslm/onnxslm/runtime"
)

func init() {
	register(&command{
		Name:    "prune",
		Args:    "IN.onnx OUT.onnx",
		Summary: "Merge or remove decoder layers (Sliding Layer Merging) and write a smaller model with a report.",
		Flags: func(fs *pflag.FlagSet) func(ctx context.Context, io *stdio, args []string) error {
			o := &pruneFlags{}
			fs.Float64Var(&o.threshold, "threshold", 0, "SLM similarity threshold: extend a window while the merged model's similarity stays above it")
			fs.IntVar(&o.layers, "layers", 0, "reach this many layers (searches the threshold)")
			fs.Float64Var(&o.ratio, "prune-ratio", 0, fmt.Sprintf("remove this share of the layers (searches the threshold; default %.2f when no threshold or depth is given)", prune.DefaultPruneRatio))
			fs.StringVar(&o.method, "method", string(prune.Auto), "how layers are chosen: auto (searched windows, a merge rule per window, least-squares repair; see docs/RESULTS.md), slm (the paper's loop), shortgpt (lowest Block Influence), drop (SLM's windows without merging)")
			fs.Float64Var(&o.paramsRatio, "params-ratio", 0, "remove this share of the decoder layers' parameters, by depth and width (MLP channels and attention heads) together; the mix is searched on the calibration KL")
			fs.Float64Var(&o.widthRatio, "width-ratio", 0, "with --params-ratio: take this share of the removed parameters from width instead of searching the mix (0: depth only, 1: width only)")
			fs.StringVar(&o.widthScore, "width-score", "", "with --params-ratio: how MLP channels are scored: fluct (FLAP's fluctuation) or wanda (|W|·‖x‖); default: both tried, the least calibration KL kept")
			fs.StringVar(&o.widthAlloc, "width-alloc", "", "with --params-ratio: how removed MLP channels are spread: layer (the same number in every layer) or global (standardized scores ranked across layers); default: both tried, the least calibration KL kept")
			fs.IntVar(&o.widthHeads, "width-heads", 0, "with --params-ratio: remove this many query heads from every kept layer (whole KV groups; 0: MLP channels only); default: each number of groups that fits tried, the least calibration KL kept")
			fs.StringVar(&o.merge, "merge", "", "how a window's weights are fused, with --method slm only: paper (the default), code (the authors' released code), mean, drop")
			fs.BoolVar(&o.recover, "recover", false, "train each merged layer (and each layer kept under removed ones) to reproduce the layers it stands for, on the calibration rows (block-wise distillation; docs/design/recovery.md)")
			fs.IntVar(&o.recoverSteps, "recover-steps", 0, fmt.Sprintf("with --recover: most training steps per layer (0: %d, fewer for layers over 10 M parameters, at least 20; stops earlier when the held-out calibration rows stop improving)", prune.DefaultRecoverSteps))
			fs.DurationVar(&o.recoverBudget, "recover-budget", 0, "with --recover: wall-clock limit per layer, e.g. 2m (0: none; a run stopped by it is not reproducible)")
			fs.Float64Var(&o.recoverLR, "recover-lr", 0, "with --recover: Adam's learning rate (0: the default)")
			o.calib = addCalibFlags(fs)
			fs.StringVar(&o.report, "report", "", "write the JSON report to this file")
			fs.BoolVar(&o.json, "json", false, "print the JSON report on stdout")
			fs.BoolVar(&o.external, "external-data", false, "write the weights to OUT.onnx.data (default: only when the model passes 2 GiB)")
			fs.BoolVar(&o.keepKV, "keep-kv-numbers", false, "keep the original layer numbers in past_key_values.N / present.N names")
			fs.IntVar(&o.batch, "batch", 0, "calibration sequences per forward pass (0: 8)")
			fs.IntVar(&o.threads, "threads", 0, "goroutines per kernel (0: all cores)")
			fs.BoolVarP(&o.quiet, "quiet", "q", false, "no progress or summary on stderr")
			fs.BoolVarP(&o.verbose, "verbose", "v", false, verboseUsage)
			fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
			return func(ctx context.Context, io *stdio, args []string) error {
				if len(args) != 2 {
					return usagef("prune takes IN.onnx and OUT.onnx, got %d arguments", len(args))
				}
				o.widthRatioSet = fs.Changed("width-ratio")
				o.widthHeadsSet = fs.Changed("width-heads")
				return runPrune(ctx, io, args[0], args[1], o)
			}
		},
	})
}

type pruneFlags struct {
	threshold, ratio float64
	layers           int
	method, merge    string
	calib            *calibFlags
	report           string
	json, external   bool
	keepKV, quiet    bool
	verbose          bool
	cpuProfile       string
	batch, threads   int
	recover          bool
	recoverSteps     int
	recoverBudget    time.Duration
	recoverLR        float64

	paramsRatio, widthRatio float64
	widthRatioSet           bool
	widthScore, widthAlloc  string
	widthHeads              int
	widthHeadsSet           bool
}

func runPrune(ctx context.Context, io *stdio, in, out string, f *pruneFlags) error {
	opts := prune.Options{
		Method:        prune.Method(f.method),
		Merge:         rewrite.Rule(f.merge),
		Threshold:     f.threshold,
		Layers:        f.layers,
		PruneRatio:    f.ratio,
		Batch:         f.batch,
		KeepKVNumbers: f.keepKV,
		Runtime:       runtime.Options{Threads: f.threads},
		Version:       Version,
		Recover:       f.recover,
		RecoverSteps:  f.recoverSteps,
		RecoverBudget: f.recoverBudget,
		RecoverLR:     f.recoverLR,
		ParamsRatio:   f.paramsRatio,
		WidthScore:    prune.WidthScore(f.widthScore),
		WidthAlloc:    prune.WidthAlloc(f.widthAlloc),
	}
	if f.widthRatioSet {
		opts.WidthRatio = &f.widthRatio
	}
	if f.widthHeadsSet {
		opts.WidthHeads = &f.widthHeads
	}
	if err := opts.Check(); err != nil {
		return pruneUsage(err)
	}
	if same, err := samePath(in, out); err != nil {
		return err
	} else if same {
		return fmt.Errorf("output %s is the input model: refusing to overwrite it", out)
	}

	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return fmt.Errorf("--cpuprofile %s: %w", f.cpuProfile, err)
		}
		defer pprof.StopCPUProfile()
	}
	rep := newReporter(io, f.quiet, f.verbose)
	m, err := loadReported(rep, in)
	if err != nil {
		return err
	}
	// The report is written to a temporary file beside its destination before
	// the long work starts (so an unwritable path fails at once) and renamed
	// into place after the model is saved.
	var report *pendingFile
	if f.report != "" {
		for _, p := range append([]string{out}, m.InputFiles()...) {
			if same, _ := samePath(p, f.report); same {
				return fmt.Errorf("report %s would overwrite %s: refusing", f.report, p)
			}
		}
		var err error
		if report, err = createPending(f.report); err != nil {
			return fmt.Errorf("report: %w", err)
		}
		defer report.discard()
	}

	pager := boundMemory(m, &opts.Runtime)
	warn := func(format string, a ...any) { fmt.Fprintf(io.Stderr, format, a...) }
	rows, _, err := f.calib.calibrationFor(in, m.Proto, opts.Runtime, f.quiet, warn, "decisions")
	if err != nil {
		return err
	}
	opts.Calibration = rows
	opts.Progress = &progressAdapter{r: rep}
	outcome, err := prune.Run(ctx, m.Proto, opts)
	if err != nil {
		return runError(err, pruneFlagOf, in)
	}
	save := rep.Start("save "+out, 0)
	written := refoldOutput(io, m.Proto, outcome.Model)
	so := outputSaveOptions(m, out, f.external)
	so.Wrote = pager.Read
	err = onnx.Save(written, out, so)
	save.Done()
	if err != nil {
		return err
	}
	r := outcome.Report
	if cfg, err := writeGenAIConfig(in, out, r.LayersBefore, r.KeptFrom, f.keepKV); err != nil {
		fmt.Fprintf(io.Stderr, "onnxslm: warning: %v\n", err)
	} else if cfg != "" && !f.quiet {
		fmt.Fprintf(io.Stderr, "onnxslm: wrote %s (num_hidden_layers %d)\n", cfg, r.LayersAfter)
	}
	if report != nil {
		if err := report.commitJSON(r); err != nil {
			os.Remove(out)
			return fmt.Errorf("report: %w", err)
		}
	}
	if f.json {
		enc := json.NewEncoder(io.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	if !f.quiet {
		printPruneSummary(io, in, out, r)
	}
	return nil
}

func printPruneSummary(io *stdio, in, out string, r *prune.Report) {
	how := string(r.Method)
	if r.Merge != "" {
		how += ", merge " + r.Merge
	}
	fmt.Fprintf(io.Stderr, "onnxslm: %s: %d → %d layers (%s)\n", in, r.LayersBefore, r.LayersAfter, how)
	if r.Auto != nil {
		var ws []string
		for _, w := range r.Auto.Windows {
			ws = append(ws, w.String())
		}
		fmt.Fprintf(io.Stderr, "  windows %s (ridge %g; KL to the original %.4f on held-out calibration rows)\n", strings.Join(ws, ", "), r.Auto.Ridge, r.Auto.KL.Check)
		if r.Auto.SpansMeasured < r.Auto.Spans {
			fmt.Fprintf(io.Stderr, "  searched %d of the %d candidate windows (screened from the calibration pass; see the report's auto.screen)\n", r.Auto.SpansMeasured, r.Auto.Spans)
		}
	} else if r.ThresholdFrom == "depth search" {
		fmt.Fprintf(io.Stderr, "  threshold %.6f (searched for %d layers%s)\n", r.Threshold, r.TargetLayers, map[bool]string{true: "", false: "; not reachable exactly"}[r.ReachedTarget])
	} else if r.Method != prune.ShortGPT && r.Width == nil {
		fmt.Fprintf(io.Stderr, "  threshold %.6f\n", r.Threshold)
	}
	if w := r.Width; w != nil {
		m := w.Mixes[w.Chosen]
		fmt.Fprintf(io.Stderr, "  params: %d of %d decoder parameters removed (target %d): %d layers (%d), %d MLP channels and %d heads per layer (%d, %s/%s); KL %.4f on held-out calibration rows\n",
			w.Removed, w.DecoderParams, w.Target, m.LayersRemoved, m.DepthParams, m.ChannelsRemoved, m.HeadsRemoved, m.WidthParams, m.Score, m.Alloc, m.KL)
	}
	if len(r.Windows) > 0 && r.Auto == nil {
		fmt.Fprintf(io.Stderr, "  merged windows %v\n", r.Windows)
	}
	fmt.Fprintf(io.Stderr, "  removed layers %v\n", r.RemovedLayers)
	if len(r.Requantized) > 0 {
		worst := r.Requantized[0]
		for _, q := range r.Requantized {
			if q.RelErr > worst.RelErr {
				worst = q
			}
		}
		fmt.Fprintf(io.Stderr, "  re-quantized %d merged projections (%d-bit, block %d); largest ‖requantized − float fusion‖/‖float fusion‖ %.4f (%d..%d %s)\n",
			len(r.Requantized), worst.Bits, worst.BlockSize, worst.RelErr, worst.Low, worst.High, worst.Role)
	}
	fmt.Fprintf(io.Stderr, "  similarity to the original %.4f (mean cosine of final hidden states on %d calibration tokens)\n", r.Similarity, r.Calibration.Tokens)
	if rc := r.Recover; rc != nil {
		if rc.Skipped != "" {
			fmt.Fprintf(io.Stderr, "  recovery skipped: %s\n", rc.Skipped)
		}
		for _, w := range rc.Windows {
			held := ""
			if w.HeldBefore != nil {
				held = fmt.Sprintf(", held-out %.3f → %.3f", *w.HeldBefore, *w.HeldAfter)
			}
			fmt.Fprintf(io.Stderr, "  recovered layer %d (layers %d..%d): loss %.3f → %.3f%s, %d steps (%s), %.1fs\n",
				w.Layer, w.From[0], w.From[1], w.FitBefore, w.FitAfter, held, w.Steps, w.Stop, w.Seconds)
		}
	}
	fmt.Fprintf(io.Stderr, "  parameters %d → %d (%.1f%% fewer)\n", r.ParametersBefore, r.ParametersAfter, 100*(1-float64(r.ParametersAfter)/float64(max(r.ParametersBefore, 1))))
	fmt.Fprintf(io.Stderr, "  %d candidates in %.1fs, %.1fs in all; wrote %s\n", r.Candidates, r.CandidateSeconds, r.WallSeconds, out)
}

// pruneFlagOf names the flag that sets each field of prune.Options.
var pruneFlagOf = map[string]string{
	"Method":          "--method",
	"Merge":           "--merge",
	"Threshold":       "--threshold",
	"Layers":          "--layers",
	"PruneRatio":      "--prune-ratio",
	"Batch":           "--batch",
	"Runtime.Threads": "--threads",
	"Recover":         "--recover",
	"RecoverSteps":    "--recover-steps",
	"RecoverBudget":   "--recover-budget",
	"RecoverLR":       "--recover-lr",
	"Calibration":     "--calib",
	"ParamsRatio":     "--params-ratio",
	"WidthRatio":      "--width-ratio",
	"WidthScore":      "--width-score",
	"WidthAlloc":      "--width-alloc",
	"WidthHeads":      "--width-heads",
}

// pruneUsage turns a *prune.OptionError into a usage error that names the
// flags; other errors are returned as they are.
func pruneUsage(err error) error { return optionUsage(err, pruneFlagOf) }

// samePath reports whether out names the same file as in (also through links).
func samePath(in, out string) (bool, error) {
	if filepath.Clean(in) == filepath.Clean(out) {
		return true, nil
	}
	a, errA := os.Stat(in)
	b, errB := os.Stat(out)
	if errA != nil || errB != nil {
		return false, nil
	}
	return os.SameFile(a, b), nil
}

// pendingFile is written beside its destination and renamed into place last.
type pendingFile struct {
	path string
	tmp  *os.File
}

func createPending(path string) (*pendingFile, error) {
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("cannot write %s: folder %s: %w", path, dir, errors.Unwrap(err))
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("cannot write %s: %s is not a folder", path, dir)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("cannot write %s: %w", path, errors.Unwrap(err))
	}
	return &pendingFile{path: path, tmp: tmp}, nil
}

// commitJSON writes v as indented JSON and renames the file into place.
func (p *pendingFile) commitJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if _, err := p.tmp.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write %s: %w", p.path, errors.Unwrap(err))
	}
	if err := p.tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("write %s: %w", p.path, errors.Unwrap(err))
	}
	if err := p.tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", p.path, errors.Unwrap(err))
	}
	if err := os.Rename(p.tmp.Name(), p.path); err != nil {
		return fmt.Errorf("write %s: %w", p.path, errors.Unwrap(err))
	}
	p.tmp = nil
	return nil
}

// discard removes the temporary file unless it was committed.
func (p *pendingFile) discard() {
	if p.tmp != nil {
		p.tmp.Close()
		os.Remove(p.tmp.Name())
	}
}

// outputSaveOptions: the pruned model keeps the input's storage. An input
// with its weights in one external-data file gets the same for the output,
// named by the input's convention: IN_data (transformers.js and optimum's
// model.onnx_data, model_fp16.onnx_data) or IN.data, after the output's file
// name. Otherwise the weights go external when asked or past 2 GiB.
func outputSaveOptions(in *onnx.Model, out string, external bool) onnx.SaveOptions {
	opts := onnx.SaveOptions{External: onnx.ExternalAuto, Protect: in.InputFiles()}
	if external {
		opts.External = onnx.ExternalAlways
	}
	if len(in.ExternalFiles) == 1 && in.Path != "" {
		base := filepath.Base(in.Path)
		for _, suffix := range []string{"_data", ".data"} {
			if in.ExternalFiles[0] == base+suffix {
				opts.External, opts.DataFile = onnx.ExternalAlways, filepath.Base(out)+suffix
			}
		}
	}
	return opts
}
