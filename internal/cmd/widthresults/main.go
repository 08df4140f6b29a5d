// Command widthresults compares depth pruning with depth and width together
// at the same parameter count (issue 16) on the shared reference models, and
// writes the table of docs/design/width.md:
//
//	go run ./internal/cmd/widthresults            # prints the markdown table
//	go run ./internal/cmd/widthresults -speed=false
//
// For each model and R in {25 %, 35 %} fewer layers it prunes with the
// default method to that depth (depth only), then with --params-ratio set to
// the share of the decoder parameters that depth removed (depth and width,
// the mix searched on the calibration KL), and with the whole share taken
// from width (--width-ratio 1). All decisions see only the calibration set
// (tokens/calib_train_16x128); eval_go and eval_prose are used for the
// perplexities (onnxslm's Go runtime) and nothing else. With -speed, each
// model's forward speed in onnxruntime is measured by internal/cmd/benchort
// (-engines ort; 16 eval_go rows of 256 tokens, 2 threads, median of -reps).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"time"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/lm"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/prune"
	"github.com/onnxslm/onnxslm/runtime"
	"github.com/onnxslm/onnxslm/tokens"
)

var (
	models = []string{"llama8", "gpt2_6"}
	ratios = []float64{0.25, 0.35}
	evals  = []string{"eval_go_64x256", "eval_prose_64x256"}
)

type row struct {
	label   string
	layers  int
	params  int64
	ppl     [2]float64
	seconds float64
	what    string
	tokPerS float64
	reused  bool
	path    string
}

func main() {
	shared := flag.String("shared", "", "folder holding testmodels/ (default: ../shared next to the repository)")
	speed := flag.Bool("speed", true, "measure onnxruntime tokens/s (needs tools/judges/node_modules)")
	reps := flag.Int("reps", 7, "timed onnxruntime runs per model (median)")
	keep := flag.String("keep", "", "folder to keep the pruned models in (default: a temporary one, removed)")
	flag.Parse()
	if err := run(*shared, *keep, *speed, *reps); err != nil {
		fmt.Fprintln(os.Stderr, "widthresults:", err)
		os.Exit(1)
	}
}

func run(shared, keep string, speed bool, reps int) error {
	ctx := context.Background()
	root, err := testenv.Root()
	if err != nil {
		return err
	}
	if shared == "" {
		shared = filepath.Join(root, "..", "shared")
	}
	dir := filepath.Join(shared, "testmodels")
	cal, err := tokens.Read(filepath.Join(dir, "tokens", "calib_train_16x128.npy"))
	if err != nil {
		return err
	}
	var sets [2][][]int64
	for i, name := range evals {
		ts, err := tokens.Read(filepath.Join(dir, "tokens", name+".npy"))
		if err != nil {
			return err
		}
		sets[i] = ts.Rows
	}
	tmp := keep
	if tmp == "" {
		if tmp, err = os.MkdirTemp("", "widthresults"); err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
	} else if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	bench := ""
	if speed {
		bench = filepath.Join(tmp, "benchort")
		cmd := exec.Command("go", "build", "-o", bench, "./internal/cmd/benchort")
		cmd.Dir, cmd.Stderr = root, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build benchort: %w", err)
		}
	}
	t0 := time.Now()
	var buf bytes.Buffer
	var verdicts []string
	for _, name := range models {
		path := filepath.Join(dir, name+".onnx")
		m, err := onnx.Load(path)
		if err != nil {
			return err
		}
		st, err := discover.Find(m.Proto)
		if err != nil {
			return err
		}
		L := st.NumLayers()
		orig := row{label: "original", layers: L, path: path}
		orig.params, _ = onnx.Parameters(m.Proto)
		if orig.ppl, err = measure(ctx, m.Proto, sets); err != nil {
			return err
		}
		if orig.tokPerS, err = ortSpeed(bench, path, dir, reps); err != nil {
			return err
		}
		done := map[string]row{}
		for _, ratio := range ratios {
			target := prune.TargetDepth(L, ratio)
			// The parameter count of target layers: identical layers, so the
			// share of the decoder parameters is the share of the layers.
			share := float64(L-target) / float64(L)
			fmt.Fprintf(&buf, "\n### %s, %d %% fewer layers: %d → %d layers, %.1f %% of the decoder parameters\n\n", name, int(math.Round(100*ratio)), L, target, 100*share)
			fmt.Fprintln(&buf, "| model | layers | parameters | eval_go ppl | eval_prose ppl | ORT tokens/s | prune time (s) | what |")
			fmt.Fprintln(&buf, "|---|---:|---:|---:|---:|---:|---:|---|")
			cells := []struct {
				label string
				opts  prune.Options
			}{
				{"depth only (default)", prune.Options{Layers: target}},
				{"depth + width (default)", prune.Options{ParamsRatio: share}},
				{"width only", prune.Options{ParamsRatio: share, WidthRatio: ptr(1.0)}},
			}
			rows := []row{orig}
			for _, c := range cells {
				key := fmt.Sprint(c.label, target)
				r, ok := done[key]
				if ok {
					r.reused = true
				} else {
					fmt.Fprintf(os.Stderr, "%s, %d → %d layers: %s\n", name, L, target, c.label)
					c.opts.Calibration, c.opts.Version = cal.Rows, "widthresults"
					out := filepath.Join(tmp, fmt.Sprintf("%s_%d_%d.onnx", name, target, len(done)))
					if r, err = pruneAndMeasure(ctx, m.Proto, c.opts, sets, out); err != nil {
						return fmt.Errorf("%s, %s: %w", name, c.label, err)
					}
					r.label = c.label
					if r.tokPerS, err = ortSpeed(bench, out, dir, reps); err != nil {
						return err
					}
					done[key] = r
				}
				rows = append(rows, r)
			}
			for _, r := range rows {
				speedCell := ""
				if r.tokPerS > 0 {
					speedCell = fmt.Sprintf("%.0f", r.tokPerS)
				}
				secs := ""
				if r.label != "original" {
					secs = fmt.Sprintf("%.1f", r.seconds)
				}
				if r.reused {
					secs = "(as above)"
				}
				fmt.Fprintf(&buf, "| %s | %d | %d | %.3f | %.3f | %s | %s | %s |\n", r.label, r.layers, r.params, r.ppl[0], r.ppl[1], speedCell, secs, r.what)
			}
			depth, both := rows[1], rows[2]
			v := fmt.Sprintf("%s at the parameters of %d %% fewer layers (%d vs %d): depth+width eval_go %.3f vs depth only %.3f (%s)",
				name, int(math.Round(100*ratio)), both.params, depth.params, both.ppl[0], depth.ppl[0],
				yes(both.ppl[0] < depth.ppl[0] && both.params <= depth.params, "lower", "NOT lower"))
			if depth.tokPerS > 0 && both.tokPerS > 0 {
				v += fmt.Sprintf("; onnxruntime %.0f vs %.0f tokens/s (depth only %.0f %% faster; original %.0f)",
					both.tokPerS, depth.tokPerS, 100*(depth.tokPerS/both.tokPerS-1), orig.tokPerS)
			}
			verdicts = append(verdicts, v)
			fmt.Fprintf(&buf, "\n%s\n", v)
		}
	}
	fmt.Fprintf(&buf, "\n#### Summary\n\n")
	for _, v := range verdicts {
		fmt.Fprintf(&buf, "- %s\n", v)
	}
	fmt.Fprintf(&buf, "\nGenerated by `go run ./internal/cmd/widthresults` in %.0f s (%d CPUs, Go %s).\n", time.Since(t0).Seconds(), goruntime.NumCPU(), goruntime.Version())
	_, err = os.Stdout.Write(buf.Bytes())
	return err
}

func ptr(x float64) *float64 { return &x }

func yes(ok bool, a, b string) string {
	if ok {
		return a
	}
	return b
}

// pruneAndMeasure prunes m with opts, saves the result to out and measures it.
func pruneAndMeasure(ctx context.Context, m *pb.ModelProto, opts prune.Options, sets [2][][]int64, out string) (row, error) {
	res, err := prune.Run(ctx, m, opts)
	if err != nil {
		return row{}, err
	}
	if err := onnx.Save(res.Model, out, onnx.SaveOptions{}); err != nil {
		return row{}, err
	}
	rep := res.Report
	r := row{layers: rep.LayersAfter, params: rep.ParametersAfter, seconds: rep.WallSeconds, path: out}
	if r.ppl, err = measure(ctx, res.Model, sets); err != nil {
		return row{}, err
	}
	var parts []string
	if rep.Auto != nil {
		var ws []string
		for _, w := range rep.Auto.Windows {
			ws = append(ws, w.String())
		}
		parts = append(parts, "merge "+strings.Join(ws, ", "))
	}
	if w := rep.Width; w != nil {
		mix := w.Mixes[w.Chosen]
		if mix.ChannelsRemoved > 0 {
			var widths []string
			for _, l := range w.Layers {
				widths = append(widths, fmt.Sprint(l.After))
			}
			parts = append(parts, fmt.Sprintf("%d MLP channels (%s/%s), widths %s", mix.ChannelsRemoved, mix.Score, mix.Alloc, strings.Join(widths, " ")))
		}
		var kls []string
		for _, x := range w.Mixes {
			if x.Skipped != "" {
				kls = append(kls, fmt.Sprintf("%d layers: —", x.LayersRemoved))
				continue
			}
			kls = append(kls, fmt.Sprintf("%d layers: %.4f", x.LayersRemoved, x.KL))
		}
		parts = append(parts, "KL by layers removed: "+strings.Join(kls, ", "))
	}
	r.what = strings.Join(parts, "; ")
	return r, nil
}

// measure returns a model's perplexity on both held-out sets (Go runtime).
func measure(ctx context.Context, m *pb.ModelProto, sets [2][][]int64) ([2]float64, error) {
	var out [2]float64
	sess, err := runtime.New(m, runtime.Options{})
	if err != nil {
		return out, err
	}
	for i, rows := range sets {
		res, err := lm.Perplexity(ctx, sess, rows, lm.Options{Batch: 16})
		if err != nil {
			return out, fmt.Errorf("%s: %w", evals[i], err)
		}
		out[i] = res.Perplexity
	}
	return out, nil
}

// ortSpeed is the model's forward speed in onnxruntime, tokens per second
// (median), from benchort; 0 without a benchort binary.
func ortSpeed(bench, model, dir string, reps int) (float64, error) {
	if bench == "" {
		return 0, nil
	}
	cmd := exec.Command(bench, "-model", model, "-tokens", filepath.Join(dir, "tokens", "eval_go_64x256.npy"),
		"-rows", "16", "-engines", "ort", "-reps", fmt.Sprint(reps), "-json")
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("benchort %s: %w", model, err)
	}
	var res struct {
		ORT struct {
			TokensPerSec float64 `json:"tokens_per_second"`
		} `json:"ort"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return 0, fmt.Errorf("benchort %s: %w", model, err)
	}
	return res.ORT.TokensPerSec, nil
}
