package distill

import "math"

// attnShape describes causal multi-head attention over rows of T tokens:
// q [R, H·hd], k and v [R, KV·hd], output [R, H·hd], R a multiple of T;
// head h reads key/value head h/(H/KV) (grouped-query attention). cos and
// sin ([≥T, hd]) are the rotary tables, nil for none; scores are divided by
// scale, masked causally and normalised with each row's own maximum.
type attnShape[F float] struct {
	t, h, kv, hd int
	scale        F
	cos, sin     []F
}

// eachHead calls f for every head of every row of one sequence (rows
// heads·hd wide) with the row's cos and sin and the head's span [lo, hi).
func (a *attnShape[F]) eachHead(heads int, f func(c, s []F, lo, hi int)) {
	hd := a.hd
	w := heads * hd
	for p := 0; p < a.t; p++ {
		c, s := a.cos[p*hd:(p+1)*hd], a.sin[p*hd:(p+1)*hd]
		for h := 0; h < heads; h++ {
			f(c, s, p*w+h*hd, p*w+(h+1)*hd)
		}
	}
}

// rope writes x·cos + rotate_half(x)·sin for every head of every row of
// one sequence (x [T, heads·hd]) into y.
func (a *attnShape[F]) rope(x, y []F, heads int) {
	hd, half := a.hd, a.hd/2
	a.eachHead(heads, func(c, s []F, lo, hi int) {
		xr, yr := x[lo:hi], y[lo:hi]
		for j := 0; j < half; j++ {
			yr[j] = xr[j]*c[j] + (-xr[j+half])*s[j]
		}
		for j := half; j < hd; j++ {
			yr[j] = xr[j]*c[j] + xr[j-half]*s[j]
		}
	})
}

// ropeBwd adds rope's transpose applied to dy into dx.
func (a *attnShape[F]) ropeBwd(dy, dx []F, heads int) {
	hd, half := a.hd, a.hd/2
	a.eachHead(heads, func(c, s []F, lo, hi int) {
		g, o := dy[lo:hi], dx[lo:hi]
		for j := 0; j < half; j++ {
			o[j] += g[j]*c[j] + g[j+half]*s[j+half]
		}
		for j := half; j < hd; j++ {
			o[j] += g[j]*c[j] - g[j-half]*s[j-half]
		}
	})
}

// probs computes head h's causal softmax P [T, T] of one sequence from the
// rotated queries qr and keys kr (masked entries are exactly 0).
func (a *attnShape[F]) probs(qr, kr, p []F, h int) {
	t, hd := a.t, a.hd
	g := h / (a.h / a.kv)
	gemm(false, true, t, t, hd, qr[h*hd:], a.h*hd, kr[g*hd:], a.kv*hd, 0, p, t)
	for i := 0; i < t; i++ {
		row := p[i*t : (i+1)*t]
		m := F(math.Inf(-1))
		for j := 0; j <= i; j++ {
			row[j] /= a.scale
			if row[j] > m {
				m = row[j]
			}
		}
		var sum float64
		for j := 0; j <= i; j++ {
			e := F(math.Exp(float64(row[j] - m)))
			row[j] = e
			sum += float64(e)
		}
		for j := 0; j <= i; j++ {
			row[j] = F(float64(row[j]) / sum)
		}
		clear(row[i+1:])
	}
}

// buffers returns the rotated q and k of sequence b (q and k themselves
// without rotary tables).
func (a *attnShape[F]) rotated(q, k []F, b int, qr, kr []F) ([]F, []F) {
	qs, ks := q[b*a.t*a.h*a.hd:(b+1)*a.t*a.h*a.hd], k[b*a.t*a.kv*a.hd:(b+1)*a.t*a.kv*a.hd]
	if a.cos == nil {
		return qs, ks
	}
	a.rope(qs, qr, a.h)
	a.rope(ks, kr, a.kv)
	return qr, kr
}

func (a *attnShape[F]) forward(q, k, v, out []F) {
	t, hd, wq, wk := a.t, a.hd, a.h*a.hd, a.kv*a.hd
	qr, kr, p := make([]F, t*wq), make([]F, t*wk), make([]F, t*t)
	for b := 0; b < len(q)/(t*wq); b++ {
		qs, ks := a.rotated(q, k, b, qr, kr)
		vs, os := v[b*t*wk:], out[b*t*wq:]
		for h := 0; h < a.h; h++ {
			a.probs(qs, ks, p, h)
			g := h / (a.h / a.kv)
			gemm(false, false, t, hd, t, p, t, vs[g*hd:], wk, 0, os[h*hd:], wq)
		}
	}
}

// backward adds dq, dk, dv for the output gradient dout. It recomputes the
// probabilities (one more forward's worth of work instead of keeping
// H·T² values per sequence).
func (a *attnShape[F]) backward(q, k, v, dout, dq, dk, dv []F) {
	t, hd, wq, wk := a.t, a.hd, a.h*a.hd, a.kv*a.hd
	rep := a.h / a.kv
	qr, kr, p, dp := make([]F, t*wq), make([]F, t*wk), make([]F, t*t), make([]F, t*t)
	dqr, dkr := make([]F, t*wq), make([]F, t*wk)
	for b := 0; b < len(q)/(t*wq); b++ {
		qs, ks := a.rotated(q, k, b, qr, kr)
		vs, dos, dvs := v[b*t*wk:], dout[b*t*wq:], dv[b*t*wk:]
		dqs, dks := dq[b*t*wq:(b+1)*t*wq], dk[b*t*wk:(b+1)*t*wk]
		if a.cos != nil {
			clear(dqr)
			clear(dkr)
		} else {
			dqr, dkr = dqs, dks
		}
		for h := 0; h < a.h; h++ {
			g := h / rep
			a.probs(qs, ks, p, h)
			gemm(true, false, t, hd, t, p, t, dos[h*hd:], wq, 1, dvs[g*hd:], wk)
			gemm(false, true, t, t, hd, dos[h*hd:], wq, vs[g*hd:], wk, 0, dp, t)
			for i := 0; i < t; i++ {
				pr, dr := p[i*t:i*t+i+1], dp[i*t:i*t+i+1]
				var s float64
				for j, pv := range pr {
					s += float64(pv) * float64(dr[j])
				}
				for j, pv := range pr {
					dr[j] = F(float64(pv) * (float64(dr[j]) - s) / float64(a.scale))
				}
				clear(dp[i*t+i+1 : (i+1)*t])
			}
			gemm(false, false, t, hd, t, dp, t, ks[g*hd:], wk, 1, dqr[h*hd:], wq)
			gemm(true, false, t, hd, t, dp, t, qs[h*hd:], wq, 1, dkr[g*hd:], wk)
		}
		if a.cos != nil {
			a.ropeBwd(dqr, dqs, a.h)
			a.ropeBwd(dkr, dks, a.kv)
		}
	}
}
