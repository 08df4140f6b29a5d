package prune

import (
	"context"
	"fmt"
	"time"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/rewrite"
	"github.com/onnxslm/onnxslm/runtime"
	"github.com/onnxslm/onnxslm/similarity"
	"github.com/onnxslm/onnxslm/slm"
)

// Kernel names the kernel of the CKA matrix of an analysis.
type Kernel string

// Kernels.
const (
	// KernelLinear is linear CKA: the definition of the reference NAME.cka.npy.
	KernelLinear Kernel = "linear"
	// KernelRBF is RBF CKA with the median heuristic: the bandwidth of each
	// minibatch's Gram matrix is RBFFactor times its median pairwise distance.
	KernelRBF Kernel = "rbf"
)

// Kernels lists the kernels Analyze accepts.
var Kernels = []Kernel{KernelLinear, KernelRBF}

// DefaultThresholds are the thresholds an analysis runs the sliding loop at
// when none are given.
var DefaultThresholds = []float64{0.95, 0.9, 0.85, 0.8}

// AnalyzeOptions configure Analyze.
type AnalyzeOptions struct {
	// Calibration is the token rows the model runs on (all of one length, at
	// least 4 tokens: each row is one CKA minibatch of its token positions).
	Calibration [][]int64
	// Batch is the number of calibration sequences per run (0: 8).
	Batch int
	// Kernel of the CKA matrix; "" means KernelLinear.
	Kernel Kernel
	// RBFFactor scales the median distance that sets the RBF bandwidth
	// (KernelRBF only: Check refuses it with another kernel); 0 means 1.
	RBFFactor float64
	// Thresholds at which the sliding loop (paper rule) is run; nil means
	// DefaultThresholds. Each must lie in (0, 1].
	Thresholds []float64
	// Runtime tunes the Go runtime.
	Runtime runtime.Options
	// Progress, when set, hears about long steps.
	Progress Progress
}

// Analysis is what Analyze measures: how alike the layers' outputs are and
// which windows the sliding loop would merge.
type Analysis struct {
	// Layers is the number of decoder layers L.
	Layers int
	// Kernel is the CKA kernel, as similarity.Kernel's String describes it
	// ("linear", "rbf(sigma=1*median distance)").
	Kernel string
	// CKA is the L×L matrix of minibatch CKA between layer outputs h_1..h_L
	// (the residual stream leaving each layer, before the final norm): every
	// calibration sequence is one minibatch, its token positions the samples.
	CKA [][]float64
	// AdjacentCKA[i] is CKA[i][i+1], the similarity of the outputs of layers i
	// and i+1 (L−1 entries).
	AdjacentCKA []float64
	// BlockInfluence[i] is 1 − the mean over calibration tokens of the cosine
	// between the input and the output of layer i.
	BlockInfluence []float64
	// Windows holds the sliding loop's decision at each threshold, in the
	// order of AnalyzeOptions.Thresholds.
	Windows     []ThresholdWindows
	Calibration CalibrationInfo
	// Candidates counts the candidate models run (shared between thresholds).
	Candidates       int
	CandidateSeconds float64
	WallSeconds      float64
}

// ThresholdWindows is the decision of the sliding loop (paper rule, a pending
// window committed at the end) at one threshold.
type ThresholdWindows struct {
	Threshold float64 `json:"threshold"`
	// Windows are the merged windows, original layer indices, inclusive,
	// ascending.
	Windows [][2]int `json:"windows"`
	// Layers is the layer count after merging them.
	Layers int `json:"layers"`
	// Similarity is the merge criterion of the result (1 when nothing merges).
	Similarity float64     `json:"similarity"`
	Trace      []TraceStep `json:"trace"`
}

// Analyze runs m once over the calibration set and measures the CKA matrix of
// its layer outputs, the Block Influence of each layer, and the windows the
// sliding loop (paper merge rule) chooses at each threshold. The loops at
// different thresholds share their candidate evaluations. m is not modified.
func Analyze(ctx context.Context, m *pb.ModelProto, opts AnalyzeOptions) (*Analysis, error) {
	t0 := time.Now()
	if err := opts.Check(); err != nil {
		return nil, err
	}
	if err := checkRows(opts.Calibration); err != nil {
		return nil, err
	}
	kernel := opts.kernel()
	thresholds := opts.Thresholds
	if thresholds == nil {
		thresholds = DefaultThresholds
	}
	seqLen := len(opts.Calibration[0])
	for i, r := range opts.Calibration {
		if len(r) != seqLen {
			return nil, fmt.Errorf("calibration row %d has %d tokens, row 0 has %d: rows must be of one length", i, len(r), seqLen)
		}
	}
	if seqLen < 4 {
		return nil, fmt.Errorf("calibration rows of %d tokens: CKA needs at least 4 token positions per sequence", seqLen)
	}
	st, err := discover.Find(m)
	if err != nil {
		return nil, fmt.Errorf("find decoder layers: %w", err)
	}
	L := st.NumLayers()
	if opts.Runtime.Constants == nil {
		// Candidate models share the original's weights: decode them once.
		opts.Runtime.Constants = runtime.NewConstants(m)
	}
	sess, err := runtime.New(m, opts.Runtime)
	if err != nil {
		return nil, fmt.Errorf("prepare model: %w", err)
	}
	prog := progressOr(opts.Progress)
	cal, err := calibrateReported(ctx, sess, st, opts.Calibration, opts.Batch, prog)
	if err != nil {
		return nil, err
	}

	prog.Start("CKA", len(opts.Calibration))
	cka, err := ckaMatrix(ctx, cal, L, kernel, prog.Tick)
	prog.Done()
	if err != nil {
		return nil, err
	}
	a := &Analysis{
		Layers:         L,
		Kernel:         kernel.String(),
		CKA:            cka,
		AdjacentCKA:    make([]float64, 0, max(L-1, 0)),
		BlockInfluence: cal.blockInfluence,
		Calibration:    CalibrationInfo{Sequences: len(opts.Calibration), SeqLen: seqLen, Tokens: cal.tokens},
	}
	for i := 0; i+1 < L; i++ {
		a.AdjacentCKA = append(a.AdjacentCKA, cka[i][i+1])
	}

	sc := &scorer{model: m, stack: st, cal: cal, rt: opts.Runtime, step: prog.Tick}
	memo := &slm.Memo{Inner: windowScorer{scorer: sc, rule: rewrite.Paper}}
	for _, th := range thresholds {
		prog.Start(fmt.Sprintf("candidates at threshold %g", th), 0)
		tw, err := windowsAt(ctx, memo, L, th)
		prog.Done()
		if err != nil {
			return nil, fmt.Errorf("threshold %g: %w", th, err)
		}
		a.Windows = append(a.Windows, tw)
	}
	a.Candidates = sc.evaluations
	a.CandidateSeconds = sc.elapsed.Seconds()
	a.WallSeconds = time.Since(t0).Seconds()
	return a, nil
}

// windowsAt runs the sliding loop at threshold th and scores its result.
func windowsAt(ctx context.Context, memo *slm.Memo, L int, th float64) (ThresholdWindows, error) {
	res, err := slm.Slide(ctx, L, memo, slm.Options{Threshold: th, AtEnd: slm.CommitPending})
	if err != nil {
		return ThresholdWindows{}, err
	}
	tw := ThresholdWindows{Threshold: th, Windows: [][2]int{}, Layers: slm.LayersAfter(L, res.Windows), Similarity: 1, Trace: []TraceStep{}}
	ws := slm.SortWindows(res.Windows)
	for _, w := range ws {
		tw.Windows = append(tw.Windows, [2]int{w.Low, w.High})
	}
	for _, s := range res.Trace {
		tw.Trace = append(tw.Trace, TraceStep{Window: s.Window, Sim: s.Sim, Action: s.ActionText()})
	}
	if len(ws) > 0 {
		// The result is the lowest window on top of the others: the last
		// candidate the loop accepted, so the memo usually has its score.
		tw.Similarity, err = memo.Similarity(ctx, ws[1:], ws[0])
		if err != nil {
			return ThresholdWindows{}, fmt.Errorf("score the result: %w", err)
		}
	}
	return tw, nil
}

// ckaMatrix computes the CKA matrix of the layer outputs h_1..h_L, one
// minibatch per calibration sequence.
func ckaMatrix(ctx context.Context, cal *calibration, L int, k similarity.Kernel, step func()) ([][]float64, error) {
	acc, err := similarity.NewCKAMatrix(L, k)
	if err != nil {
		return nil, err
	}
	mb := make([][]float32, L)
	for bi, b := range cal.batches {
		for r := range b.rows {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			var n int
			for l := 0; l < L; l++ {
				h := b.hidden[l+1]
				if h.Rank() != 3 || h.Dim(0) != len(b.rows) {
					return nil, fmt.Errorf("output of layer %d has shape %v, want [%d, T, d]", l, h.Shape(), len(b.rows))
				}
				n = h.Dim(1)
				per := n * h.Dim(2)
				data := b.stream(l + 1) // h plus its branch on a fused-residual stack
				if len(data) != len(b.rows)*per {
					return nil, fmt.Errorf("output of layer %d: %d float32 values, want %d", l, len(data), len(b.rows)*per)
				}
				mb[l] = data[r*per : (r+1)*per]
			}
			if err := acc.Add(n, mb); err != nil {
				return nil, fmt.Errorf("CKA of calibration sequence %d: %w", bi*len(cal.batches[0].rows)+r, err)
			}
			if step != nil {
				step()
			}
		}
	}
	return acc.Matrix(), nil
}

// kernel is the similarity kernel of checked options.
func (o *AnalyzeOptions) kernel() similarity.Kernel {
	if o.Kernel == KernelRBF {
		return similarity.RBFMedian(o.RBFFactor)
	}
	return similarity.LinearKernel
}
