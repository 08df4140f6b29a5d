package prune

import (
	"cmp"
	"math"
	"slices"

	"github.com/onnxslm/onnxslm/lm"
)

// The KL at large vocabularies. Keeping the original's probabilities for
// every calibration token costs tokens × vocab × 4 bytes: 66 MB for 512
// tokens of a 32k vocabulary, but 1 GB for 2048 tokens of Llama 3's 128k.
// Above maxDenseKL values the original's distributions are kept as their
// topKL most likely tokens plus the mass of the rest (the tail), and the KL
// is that of the two distributions over topKL + 1 outcomes (the tail as one):
//
//	KL_top = Σ_{j∈top} p_j (log p_j − log q_j) + P_tail (log P_tail − log Q_tail)
//
// It never exceeds the exact KL (grouping outcomes can only lower a
// divergence) and equals it when the tail is empty; TestTopKLError measures
// the gap on the shared models. The candidate still needs every logit for its
// log-sum-exp (one exp per logit, as for the exact KL).
const (
	maxDenseKL = 1 << 25 // 32 Mi values: 128 MiB of probabilities
	topKL      = 256
)

// topDistributions are the original's next-token distributions cut to the
// k most likely tokens of each position.
type topDistributions struct {
	k, v int
	idx  []int32   // tokens × k token ids, most likely first
	logp []float64 // their log-probabilities
	// tail[t] is the mass outside the top k, logTail its log (0 when empty).
	tail, logTail []float64
}

func newTopDistributions(logits []float32, v, k int) *topDistributions {
	n := len(logits) / v
	k = min(k, v)
	d := &topDistributions{k: k, v: v, idx: make([]int32, n*k), logp: make([]float64, n*k), tail: make([]float64, n), logTail: make([]float64, n)}
	heap := make([]int32, 0, k)
	for t := 0; t < n; t++ {
		z := logits[t*v : (t+1)*v]
		lse := lm.LogSumExp(z)
		order := topK(z, k, heap[:0])
		var top float64
		for i, j := range order[:k] {
			lp := float64(z[j]) - lse
			d.idx[t*k+i], d.logp[t*k+i] = j, lp
			top += math.Exp(lp)
		}
		if tail := 1 - top; tail > 0 {
			d.tail[t], d.logTail[t] = tail, math.Log(tail)
		}
	}
	return d
}

// tokenScores is distributions.tokenScores for the cut distributions.
func (d *topDistributions) tokenScores(logits []float32, threads int) (kl, lse []float64) {
	v, k := d.v, d.k
	n := len(logits) / v
	kl, lse = make([]float64, n), make([]float64, n)
	forTokens(n, threads, func(t int) {
		z := logits[t*v : (t+1)*v]
		l := lm.LogSumExp(z)
		lse[t] = l
		var s, qtop float64
		for i := 0; i < k; i++ {
			lq := float64(z[d.idx[t*k+i]]) - l
			lp := d.logp[t*k+i]
			s += math.Exp(lp) * (lp - lq)
			qtop += math.Exp(lq)
		}
		if d.tail[t] > 0 {
			qtail := max(1-qtop, 1e-30)
			s += d.tail[t] * (d.logTail[t] - math.Log(qtail))
		}
		kl[t] = s
	})
	return kl, lse
}

// topK returns the indices of the k largest values of z, largest first (ties:
// lower index first), using buf (capacity k) as a min-heap: O(len(z)) when
// few values displace the heap's least.
func topK(z []float32, k int, buf []int32) []int32 {
	less := func(a, b int32) bool { // a ranks below b
		return z[a] < z[b] || (z[a] == z[b] && a > b)
	}
	h := buf[:0]
	down := func(i int) {
		for {
			l, m := 2*i+1, i
			if l < len(h) && less(h[l], h[m]) {
				m = l
			}
			if r := l + 1; r < len(h) && less(h[r], h[m]) {
				m = r
			}
			if m == i {
				return
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
	}
	for j := range z {
		idx := int32(j)
		switch {
		case len(h) < k:
			h = append(h, idx)
			for i := len(h) - 1; i > 0; {
				p := (i - 1) / 2
				if !less(h[i], h[p]) {
					break
				}
				h[i], h[p] = h[p], h[i]
				i = p
			}
		case less(h[0], idx):
			h[0] = idx
			down(0)
		}
	}
	slices.SortFunc(h, func(a, b int32) int {
		if c := cmp.Compare(z[b], z[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return h
}
