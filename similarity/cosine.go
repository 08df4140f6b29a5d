package similarity

import (
	"fmt"
	"math"
)

// Cosine returns the cosine similarity <a, b> / (|a| |b|) of two vectors of
// equal length (e.g. flattened hidden states), accumulated in float64. It is
// 0 when either vector is all zeros.
func Cosine(a, b []float32) (float64, error) {
	if len(a) != len(b) {
		return 0, fmt.Errorf("similarity: cosine of vectors of lengths %d and %d", len(a), len(b))
	}
	return cosine(a, b), nil
}

func cosine(a, b []float32) float64 {
	var ab0, ab1, aa0, aa1, bb0, bb1 float64
	k := 0
	for ; k+2 <= len(a); k += 2 {
		x0, y0 := float64(a[k]), float64(b[k])
		x1, y1 := float64(a[k+1]), float64(b[k+1])
		ab0 += x0 * y0
		ab1 += x1 * y1
		aa0 += x0 * x0
		aa1 += x1 * x1
		bb0 += y0 * y0
		bb1 += y1 * y1
	}
	for ; k < len(a); k++ {
		x, y := float64(a[k]), float64(b[k])
		ab0 += x * y
		aa0 += x * x
		bb0 += y * y
	}
	ab, aa, bb := ab0+ab1, aa0+aa1, bb0+bb1
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / (math.Sqrt(aa) * math.Sqrt(bb))
}

// BlockInfluence returns the Block Influence of a layer (Men et al. 2024,
// ShortGPT) on one sequence: 1 - the mean over tokens (rows) of the cosine
// similarity between the layer's input row and output row. in and out are
// n×d row-major with the same shape.
func BlockInfluence(in, out []float32, d int) (float64, error) {
	var acc BlockInfluenceMean
	if err := acc.Add(in, out, d); err != nil {
		return 0, err
	}
	return acc.Value(), nil
}

// BlockInfluenceMean accumulates Block Influence over many sequences: 1 - the
// mean over all tokens added of cosine(input row, output row). Its zero value
// is ready to use.
type BlockInfluenceMean struct {
	sum    float64
	tokens int
}

// Add adds the tokens of one sequence: in and out are n×d row-major.
func (b *BlockInfluenceMean) Add(in, out []float32, d int) error {
	if d <= 0 {
		return fmt.Errorf("similarity: block influence with row width %d", d)
	}
	if len(in) != len(out) || len(in)%d != 0 {
		return fmt.Errorf("similarity: block influence of %d input and %d output values in rows of %d", len(in), len(out), d)
	}
	for i := 0; i+d <= len(in); i += d {
		b.sum += cosine(in[i:i+d], out[i:i+d])
		b.tokens++
	}
	return nil
}

// Tokens returns the number of tokens added.
func (b *BlockInfluenceMean) Tokens() int { return b.tokens }

// Value returns 1 - the mean cosine similarity over the tokens added (NaN
// before any).
func (b *BlockInfluenceMean) Value() float64 {
	if b.tokens == 0 {
		return math.NaN()
	}
	return 1 - b.sum/float64(b.tokens)
}
