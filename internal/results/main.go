// Command results prunes the shared reference models with every method at
// 25 % and 35 % fewer layers and writes the comparison table, docs/RESULTS.md:
//
//	go run ./internal/results            # writes docs/RESULTS.md
//	go run ./internal/results -o -       # prints the table
//
// Every method decides on the calibration set (tokens/calib_train_16x128)
// only; the two held-out sets (eval_go, eval_prose) are used for the
// perplexities in the table and for nothing else. It runs in a few minutes on
// two cores.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/harness"
	"github.com/onnxslm/onnxslm/internal/builtin"
	"github.com/onnxslm/onnxslm/internal/heldout"
	"github.com/onnxslm/onnxslm/lm"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/prune"
	"github.com/onnxslm/onnxslm/rewrite"
	ort "github.com/onnxslm/onnxslm/runtime"
	"github.com/onnxslm/onnxslm/tokenizer"
)

// method is one row of a cell.
type method struct {
	label  string
	method prune.Method // "" is the default method
	merge  rewrite.Rule
	// params prunes to the parameter count of the cell's depth by depth and
	// width together (--params-ratio, issue 16) instead of to the depth.
	params bool
	// recover (--recover): each layer standing for several original ones
	// distilled toward them (issue 15).
	recover bool
}

// methods: each depth method, then the same with --recover; depth + width
// last.
var methods = append(withRecover([]method{
	{"shortgpt", prune.ShortGPT, "", false, false},
	{"drop", prune.Drop, "", false, false},
	{"slm (paper)", prune.SLM, rewrite.Paper, false, false},
	{"slm (code)", prune.SLM, rewrite.Code, false, false},
	{"default", "", "", false, false},
}), method{"depth + width", "", "", true, false})

// withRecover follows each method by the same with --recover.
func withRecover(ms []method) []method {
	var out []method
	for _, m := range ms {
		r := m
		r.label, r.recover = m.label+" +recover", true
		out = append(out, m, r)
	}
	return out
}

// row is one measured model.
type row struct {
	label      string
	recover    bool
	isDefault  bool // the default method at the depth (with or without recovery)
	layers     int
	params     int64
	ppl        [2]float64
	acc        [2]float64 // builtin:go-next-line acc, acc_norm
	seconds    float64    // pruning time
	what       string     // what was removed or merged
	candidates int
	reused     bool // same depth as an earlier cell: measured once
}

func main() {
	out := flag.String("o", "docs/RESULTS.md", "output file (- for stdout)")
	shared := flag.String("shared", "", heldout.SharedUsage)
	flag.Parse()
	if err := run(*out, *shared); err != nil {
		fmt.Fprintln(os.Stderr, "results:", err)
		os.Exit(1)
	}
}

func run(outPath, shared string) error {
	ctx := context.Background()
	data, err := heldout.Load(shared)
	if err != nil {
		return err
	}
	dir, cal, sets := data.Dir, data.Calib, data.Evals
	task, err := builtin.Task("builtin:go-next-line")
	if err != nil {
		return err
	}
	t0 := time.Now()
	var buf bytes.Buffer
	header(&buf)
	var verdicts []string
	for _, name := range heldout.Models {
		m, err := onnx.Load(filepath.Join(dir, name+".onnx"))
		if err != nil {
			return err
		}
		orig, origAcc, err := measure(ctx, m.Proto, sets, task)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		L, err := layers(m.Proto)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		origRow := row{label: "original", layers: L, ppl: orig, acc: origAcc}
		origRow.params, _ = onnx.Parameters(m.Proto)
		done := map[string]row{}
		for _, ratio := range heldout.Ratios {
			target := prune.TargetDepth(L, ratio)
			fmt.Fprintf(&buf, "\n### %s, %d %% fewer layers: %d → %d\n\n", name, int(math.Round(100*ratio)), L, target)
			fmt.Fprintln(&buf, "| method | layers | parameters | eval_go ppl | eval_prose ppl | go-next-line acc | acc_norm | prune time (s) | candidates | what |")
			fmt.Fprintln(&buf, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
			rows := []row{origRow}
			for _, me := range methods {
				key := fmt.Sprint(me.label, target)
				r, ok := done[key]
				if ok {
					r.reused = true
				} else {
					fmt.Fprintf(os.Stderr, "%s → %d layers: %s\n", name, target, me.label)
					if r, err = pruneAndMeasure(ctx, m.Proto, cal, L, target, me, sets, task); err != nil {
						return fmt.Errorf("%s at %d layers, %s: %w", name, target, me.label, err)
					}
					done[key] = r
				}
				rows = append(rows, r)
			}
			// The depth methods: every row but the original and the last
			// (depth + width, at the same parameter count, not depth).
			// best: the baselines' lowest (without recovery); lowest: of
			// every depth row, for the bold.
			depthRows := rows[:len(rows)-1]
			best := [2]float64{math.Inf(1), math.Inf(1)}
			lowest := best
			var def, defRec row
			for _, r := range depthRows[1:] {
				for j := range best {
					lowest[j] = min(lowest[j], r.ppl[j])
					if !r.isDefault && !r.recover {
						best[j] = min(best[j], r.ppl[j])
					}
				}
				switch {
				case r.isDefault && r.recover:
					defRec = r
				case r.isDefault:
					def = r
				}
			}
			for i, r := range rows {
				cells := []string{r.label, fmt.Sprint(r.layers), fmt.Sprint(r.params)}
				for j := range r.ppl {
					c := fmt.Sprintf("%.3f", r.ppl[j])
					if r.label != "original" && i < len(depthRows) && r.ppl[j] <= lowest[j] {
						c = "**" + c + "**"
					}
					cells = append(cells, c)
				}
				cells = append(cells, fmt.Sprintf("%.3f", r.acc[0]), fmt.Sprintf("%.3f", r.acc[1]))
				switch {
				case r.label == "original":
					cells = append(cells, "", "", "")
				case r.reused:
					cells = append(cells, "(as above)", "", r.what)
				default:
					cells = append(cells, fmt.Sprintf("%.1f", r.seconds), fmt.Sprint(r.candidates), r.what)
				}
				fmt.Fprintf(&buf, "| %s |\n", strings.Join(cells, " | "))
			}
			goWins := def.ppl[0] < best[0]
			proseGap := 100 * (def.ppl[1]/best[1] - 1)
			v := fmt.Sprintf("%s, %d %% fewer (%d→%d): default eval_go %.3f vs best baseline %.3f (%s); eval_prose %.3f vs best %.3f (%+.1f %%, %s)",
				name, int(math.Round(100*ratio)), L, target, def.ppl[0], best[0], yes(goWins, "lowest", "NOT lowest"), def.ppl[1], best[1], proseGap, yes(proseGap <= 2, "within 2 %", "NOT within 2 %"))
			both := rows[len(rows)-1]
			v += fmt.Sprintf("; depth + width at the same parameters (%d vs %d) eval_go %.3f (%s than the default)",
				both.params, def.params, both.ppl[0], yes(both.ppl[0] < def.ppl[0] && both.params <= def.params, "lower", "NOT lower"))
			closed := (def.ppl[0] - defRec.ppl[0]) / (def.ppl[0] - orig[0])
			rv := fmt.Sprintf("%s, %d %% fewer (%d→%d): default +recover eval_go %.3f vs default %.3f, eval_prose %.3f vs %.3f (%s); closes %.0f %% of the eval_go gap to the original %.3f (%s)",
				name, int(math.Round(100*ratio)), L, target, defRec.ppl[0], def.ppl[0], defRec.ppl[1], def.ppl[1],
				yes(defRec.ppl[0] < def.ppl[0] && defRec.ppl[1] < def.ppl[1], "both lower", "NOT both lower"), 100*closed, orig[0], yes(closed >= 0.3, "at least 30 %", "NOT 30 %"))
			verdicts = append(verdicts, v, rv)
			fmt.Fprintf(&buf, "\n%s\n\n%s\n", v, rv)
		}
	}
	fmt.Fprintf(&buf, "\n## Summary\n\n")
	for _, v := range verdicts {
		fmt.Fprintf(&buf, "- %s\n", v)
	}
	fmt.Fprintf(&buf, "\nGenerated by `go run ./internal/results` in %.0f s (%d CPUs, Go %s).\n", time.Since(t0).Seconds(), runtime.NumCPU(), runtime.Version())
	if outPath == "-" {
		_, err := os.Stdout.Write(buf.Bytes())
		return err
	}
	return os.WriteFile(outPath, buf.Bytes(), 0o644)
}

func yes(ok bool, a, b string) string {
	if ok {
		return a
	}
	return b
}

func header(w io.Writer) {
	fmt.Fprint(w, `# Results: depth pruning at equal depth

Every method prunes the two shared reference models (../shared/testmodels) to
the same depth with `+"`--layers N`"+`, N = L − round-half-up(R·L) for R = 25 % and
35 % (prune.TargetDepth). All decisions use the calibration set
(tokens/calib_train_16x128, the same as the built-in set) and nothing else;
the held-out sets eval_go (64×256 bytes of Go packages not trained on) and
eval_prose (64×256 bytes of English license text, a domain shift) are only
used for the perplexities below, computed by onnxslm's Go runtime. The
accuracies are zero-shot multiple choice on the built-in task go-next-line
(116 examples made from eval_go: the real next line of Go among four, scored
as lm-evaluation-harness does; chance is 0.25; the standard error is about
0.045 at these accuracies, so differences under about 0.09 are noise): `+"`onnxslm eval MODEL --task builtin:go-next-line`"+`.

- **shortgpt**: remove the layers of lowest Block Influence.
- **drop**: the paper's windows (threshold searched for the depth), upper layers removed without merging.
- **slm (paper)**: the paper's sliding merge, threshold searched for the depth.
- **slm (code)**: the same loop with the authors' released merge rule.
- **default** (`+"`--method auto`"+`): windows searched by dynamic programming over single-window
  costs, a merge rule per window, a least-squares repair folded into each merged layer's
  MLP output projection, ranked by the KL divergence of next-token distributions on the
  calibration set (docs/design/method.md).
- **+recover** (`+"`--recover`"+`): the same pruned model, then each layer that stands for several
  original layers (a merged window, or a layer kept under removed ones) trained toward them on
  the calibration boundaries (docs/design/recovery.md).
- **depth + width** (`+"`--params-ratio`"+`, the last row of a cell): not at the depth but at
  its parameter count (the share of the decoder parameters the removed layers hold), by
  depth and MLP width together, the mix searched on the calibration KL
  (docs/design/width.md); not counted among the depth methods for the bold marks.

Bold: the lowest perplexity of the pruned models in the cell. "candidates" counts the
candidate models run during the decision (for the default, repair fits included).
Prune time is the wall time of prune.Run (calibration, decision, rewrite) on a shared
2-core machine.

Regenerate with `+"`go run ./internal/results`"+`.
`)
}

// pruneAndMeasure prunes m (L layers) to target layers, or to their
// parameter count (me.params), with one method and measures it.
func pruneAndMeasure(ctx context.Context, m *pb.ModelProto, cal [][]int64, L, target int, me method, sets [2][][]int64, task *harness.Task) (row, error) {
	opts := prune.Options{Method: me.method, Merge: me.merge, Layers: target, Calibration: cal, Batch: 8, Version: "results", Recover: me.recover}
	if me.params {
		// Identical layers: the share of the decoder parameters that
		// L − target layers hold is their share of the layers.
		opts.Layers, opts.ParamsRatio = 0, float64(L-target)/float64(L)
	}
	out, err := prune.Run(ctx, m, opts)
	if err != nil {
		return row{}, err
	}
	rep := out.Report
	ppl, acc, err := measure(ctx, out.Model, sets, task)
	if err != nil {
		return row{}, err
	}
	label := me.label
	if me.method == "" && !me.params {
		label = fmt.Sprintf("default (%s)", rep.Method)
		if me.recover {
			label += " +recover"
		}
	}
	r := row{label: label, recover: me.recover, isDefault: me.method == "" && !me.params, layers: rep.LayersAfter, params: rep.ParametersAfter, ppl: ppl, acc: acc, seconds: rep.WallSeconds, candidates: rep.Candidates}
	switch {
	case rep.Width != nil:
		mix := rep.Width.Mixes[rep.Width.Chosen]
		r.what = fmt.Sprintf("--params-ratio %.3f: %d layers (%d parameters), %d MLP channels (%d; %s/%s, refit %v)",
			rep.Width.ParamsRatio, mix.LayersRemoved, mix.DepthParams, mix.ChannelsRemoved, mix.WidthParams, mix.Score, mix.Alloc, mix.Refit)
	case rep.Auto != nil:
		var parts []string
		for _, w := range rep.Auto.Windows {
			parts = append(parts, w.String())
		}
		r.what = fmt.Sprintf("merge %s (ridge %g)", strings.Join(parts, ", "), rep.Auto.Ridge)
	case len(rep.Windows) > 0 && me.method != prune.Drop:
		r.what = fmt.Sprintf("merge %v (threshold %.4f)", rep.Windows, rep.Threshold)
	default:
		r.what = fmt.Sprintf("remove %v", rep.RemovedLayers)
	}
	if !rep.ReachedTarget {
		r.what += fmt.Sprintf(" — target %d not reached", target)
	}
	return r, nil
}

// measure returns a model's perplexity on both held-out sets and its acc and
// acc_norm on the task.
func measure(ctx context.Context, m *pb.ModelProto, sets [2][][]int64, task *harness.Task) (ppl, acc [2]float64, err error) {
	sess, err := ort.New(m, ort.Options{})
	if err != nil {
		return ppl, acc, err
	}
	if ppl, err = heldout.Perplexities(ctx, sess, sets); err != nil {
		return ppl, acc, err
	}
	model := &harness.Model{Session: sess, MaxLength: lm.MaxPositions(sess)}
	res, err := harness.Evaluate(ctx, task, tokenizer.Bytes(), model, harness.Options{Batch: 16})
	if err != nil {
		return ppl, acc, fmt.Errorf("%s: %w", task.Name, err)
	}
	return ppl, [2]float64{res.Acc, res.AccNorm}, nil
}

// layers returns the number of decoder layers of m.
func layers(m *pb.ModelProto) (int, error) {
	st, err := discover.Find(m)
	if err != nil {
		return 0, err
	}
	return st.NumLayers(), nil
}
