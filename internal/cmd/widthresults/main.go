// Command widthresults compares depth pruning with depth and width together
// at the same parameter count (issue 16) on the shared reference models, and
// writes the table of docs/design/width.md:
//
//	go run ./internal/cmd/widthresults            # prints the markdown table
//	go run ./internal/cmd/widthresults -speed=false
//
// For each model and R in {25 %, 35 %} fewer layers it prunes with the
// default method to that depth (depth only), then with --params-ratio set to
// the share of the decoder parameters that depth removed (depth and width:
// the layers, MLP channels and attention heads searched on the calibration
// KL), and with the whole share taken from width (--width-ratio 1) by MLP
// channels only (--width-heads 0) and by channels with one query head of
// every layer (--width-heads 1). All decisions see only the calibration set
// (tokens/calib_train_16x128); eval_go and eval_prose are used for the
// perplexities (onnxslm's Go runtime) and nothing else. With -speed, each
// model's forward speed in onnxruntime is measured by internal/cmd/benchort
// (-engines ort; 16 eval_go rows of 256 tokens, 2 threads) after all models
// are pruned, in -rounds rounds over the distinct files: tokens per second of
// the fastest of all runs, the measure least disturbed by other load on a
// shared machine (the medians of one file measured twice differed by 1.8× on
// the 2-core machine shared with other work).
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"time"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/internal/heldout"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/prune"
	"github.com/onnxslm/onnxslm/runtime"
)

type row struct {
	label   string
	layers  int
	params  int64
	ppl     [2]float64
	seconds float64
	what    string
	tokPerS float64
	path    string
}

func main() {
	shared := flag.String("shared", "", heldout.SharedUsage)
	speed := flag.Bool("speed", true, "measure onnxruntime tokens/s (needs tools/judges/node_modules)")
	reps := flag.Int("reps", 5, "timed onnxruntime runs per model and round")
	rounds := flag.Int("rounds", 3, "rounds of speed measurements over the models (the fastest run of all counts)")
	keep := flag.String("keep", "", "folder to keep the pruned models in (default: a temporary one, removed)")
	flag.Parse()
	if err := run(*shared, *keep, *speed, *reps, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "widthresults:", err)
		os.Exit(1)
	}
}

func run(shared, keep string, speed bool, reps, rounds int) error {
	ctx := context.Background()
	root, err := testenv.Root()
	if err != nil {
		return err
	}
	data, err := heldout.Load(shared)
	if err != nil {
		return err
	}
	dir, cal, sets := data.Dir, data.Calib, data.Evals
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
	type cell struct {
		name         string
		L, target    int
		ratio, share float64
		rows         []*row
		reused       []bool
	}
	var cells []cell
	for _, name := range heldout.Models {
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
		orig := &row{label: "original", layers: L, path: path}
		orig.params, _ = onnx.Parameters(m.Proto)
		if orig.ppl, err = measure(ctx, m.Proto, sets); err != nil {
			return err
		}
		done := map[string]*row{}
		for _, ratio := range heldout.Ratios {
			target := prune.TargetDepth(L, ratio)
			// The parameter count of target layers: identical layers, so the
			// share of the decoder parameters is the share of the layers.
			share := float64(L-target) / float64(L)
			c := cell{name: name, L: L, target: target, ratio: ratio, share: share, rows: []*row{orig}, reused: []bool{false}}
			for _, k := range []struct {
				label string
				opts  prune.Options
			}{
				{"depth only (default)", prune.Options{Layers: target}},
				{"depth + width (default)", prune.Options{ParamsRatio: share}},
				{"width: channels only", prune.Options{ParamsRatio: share, WidthRatio: ptr(1.0), WidthHeads: iptr(0)}},
				{"width: channels + 1 head", prune.Options{ParamsRatio: share, WidthRatio: ptr(1.0), WidthHeads: iptr(1)}},
			} {
				key := fmt.Sprint(k.label, target)
				r, ok := done[key]
				if !ok {
					fmt.Fprintf(os.Stderr, "%s, %d → %d layers: %s\n", name, L, target, k.label)
					k.opts.Calibration, k.opts.Version = cal, "widthresults"
					out := filepath.Join(tmp, fmt.Sprintf("%s_%d_%d.onnx", name, target, len(done)))
					x, err := pruneAndMeasure(ctx, m.Proto, k.opts, sets, out)
					if err != nil {
						return fmt.Errorf("%s, %s: %w", name, k.label, err)
					}
					x.label = k.label
					r = &x
					done[key] = r
				}
				c.rows = append(c.rows, r)
				c.reused = append(c.reused, ok)
			}
			cells = append(cells, c)
		}
	}
	if bench != "" {
		// Speed last, in rounds over the distinct files (the same model
		// chosen twice is measured once), the fastest run of all rounds
		// counting: load from other work on the machine comes and goes.
		byFile := map[string][]*row{}
		var order []string
		for _, c := range cells {
			for _, r := range c.rows {
				b, err := os.ReadFile(r.path)
				if err != nil {
					return err
				}
				h := fmt.Sprintf("%x", sha256.Sum256(b))
				if len(byFile[h]) == 0 {
					order = append(order, h)
				}
				if !slices.Contains(byFile[h], r) {
					byFile[h] = append(byFile[h], r)
				}
			}
		}
		for round := 0; round < rounds; round++ {
			for _, h := range order {
				rs := byFile[h]
				fmt.Fprintf(os.Stderr, "speed round %d: %s\n", round+1, rs[0].path)
				v, err := ortSpeed(bench, rs[0].path, dir, reps)
				if err != nil {
					return err
				}
				for _, r := range rs {
					r.tokPerS = max(r.tokPerS, v)
				}
			}
		}
	}
	var buf bytes.Buffer
	var verdicts []string
	for _, c := range cells {
		fmt.Fprintf(&buf, "\n### %s, %d %% fewer layers: %d → %d layers, %.1f %% of the decoder parameters\n\n", c.name, int(math.Round(100*c.ratio)), c.L, c.target, 100*c.share)
		fmt.Fprintln(&buf, "| model | layers | parameters | eval_go ppl | eval_prose ppl | ORT tokens/s | prune time (s) | what |")
		fmt.Fprintln(&buf, "|---|---:|---:|---:|---:|---:|---:|---|")
		for i, r := range c.rows {
			speedCell := ""
			if r.tokPerS > 0 {
				speedCell = fmt.Sprintf("%.0f", r.tokPerS)
			}
			secs := ""
			if r.label != "original" {
				secs = fmt.Sprintf("%.1f", r.seconds)
			}
			if c.reused[i] {
				secs = "(as above)"
			}
			fmt.Fprintf(&buf, "| %s | %d | %d | %.3f | %.3f | %s | %s | %s |\n", r.label, r.layers, r.params, r.ppl[0], r.ppl[1], speedCell, secs, r.what)
		}
		orig, depth, both := c.rows[0], c.rows[1], c.rows[2]
		v := fmt.Sprintf("%s at the parameters of %d %% fewer layers (%d vs %d): depth+width eval_go %.3f vs depth only %.3f (%s)",
			c.name, int(math.Round(100*c.ratio)), both.params, depth.params, both.ppl[0], depth.ppl[0],
			yes(both.ppl[0] < depth.ppl[0] && both.params <= depth.params, "lower", "NOT lower"))
		if depth.tokPerS > 0 && both.tokPerS > 0 {
			v += fmt.Sprintf("; onnxruntime %.0f vs %.0f tokens/s (depth only %+.0f %%; original %.0f)",
				both.tokPerS, depth.tokPerS, 100*(depth.tokPerS/both.tokPerS-1), orig.tokPerS)
		}
		ch, hd := c.rows[3], c.rows[4]
		v += fmt.Sprintf("; width by channels only eval_go %.3f (%d parameters, %.0f tokens/s) vs channels + 1 head per layer %.3f (%d, %.0f tokens/s)",
			ch.ppl[0], ch.params, ch.tokPerS, hd.ppl[0], hd.params, hd.tokPerS)
		verdicts = append(verdicts, v)
		fmt.Fprintf(&buf, "\n%s\n", v)
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

func iptr(x int) *int { return &x }

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
		if mix.HeadsRemoved > 0 && len(w.Layers) > 0 {
			parts = append(parts, fmt.Sprintf("%d of %d heads per layer", mix.HeadsRemoved, w.Layers[0].HeadsBefore))
		}
		if mix.Refit {
			parts = append(parts, "refit")
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
		// The least KL of each number of heads removed, at the chosen depth.
		best := map[int]float64{}
		var hs []int
		for _, v := range mix.Variants {
			if b, ok := best[v.Heads]; !ok || v.KL < b {
				if !ok {
					hs = append(hs, v.Heads)
				}
				best[v.Heads] = v.KL
			}
		}
		if len(hs) > 1 {
			var hk []string
			for _, h := range hs {
				hk = append(hk, fmt.Sprintf("%d: %.4f", h, best[h]))
			}
			parts = append(parts, fmt.Sprintf("KL by heads removed per layer (at %d layers removed): %s", mix.LayersRemoved, strings.Join(hk, ", ")))
		}
	}
	r.what = strings.Join(parts, "; ")
	return r, nil
}

// measure returns a model's perplexity on both held-out sets (Go runtime).
func measure(ctx context.Context, m *pb.ModelProto, sets [2][][]int64) ([2]float64, error) {
	sess, err := runtime.New(m, runtime.Options{})
	if err != nil {
		return [2]float64{}, err
	}
	return heldout.Perplexities(ctx, sess, sets)
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
		Batch  int `json:"batch"`
		SeqLen int `json:"seq_len"`
		ORT    struct {
			Best float64 `json:"best_seconds"`
		} `json:"ort"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return 0, fmt.Errorf("benchort %s: %w", model, err)
	}
	if res.ORT.Best <= 0 {
		return 0, fmt.Errorf("benchort %s: no timing", model)
	}
	return float64(res.Batch*res.SeqLen) / res.ORT.Best, nil
}
