package similarity

import "fmt"

func checkGram(k, l []float64, n, min int) error {
	if n < min {
		return fmt.Errorf("similarity: %d samples, this estimator needs at least %d", n, min)
	}
	if len(k) != n*n || len(l) != n*n {
		return fmt.Errorf("similarity: Gram matrices of %d and %d values, want %d×%d = %d", len(k), len(l), n, n, n*n)
	}
	return nil
}

// HSICBiased returns the biased HSIC estimate of Gretton et al. (2005), as
// written by Song et al. (2012, eq. 4): tr(K H L H) / (n-1)^2, where
// H = I - 11ᵀ/n centers, for n×n Gram matrices K and L (row-major). n >= 2.
func HSICBiased(k, l []float64, n int) (float64, error) {
	if err := checkGram(k, l, n, 2); err != nil {
		return 0, err
	}
	// tr(KHLH) = sum_ij (HKH)_ij L_ij: double-center K, then take the
	// elementwise product with L.
	kc := doubleCenter(k, n)
	var s float64
	for i, v := range kc {
		s += v * l[i]
	}
	nf := float64(n)
	return s / ((nf - 1) * (nf - 1)), nil
}

// doubleCenter returns H K H.
func doubleCenter(k []float64, n int) []float64 {
	row := make([]float64, n)
	var all float64
	for i := 0; i < n; i++ {
		var s float64
		for j := 0; j < n; j++ {
			s += k[i*n+j]
		}
		row[i] = s / float64(n)
		all += s
	}
	all /= float64(n * n)
	// K is not assumed symmetric: use column means for the columns.
	col := make([]float64, n)
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			col[j] += k[i*n+j]
		}
	}
	out := make([]float64, n*n)
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			out[i*n+j] = k[i*n+j] - row[i] - col[j]/float64(n) + all
		}
	}
	return out
}

// HSICUnbiased returns the unbiased HSIC estimate of Song et al. (2012,
// eq. 5) for n×n Gram matrices K and L (row-major), n >= 4. With K~ and L~
// the Gram matrices with their diagonals set to zero:
//
//	HSIC1 = [ tr(K~L~) + 1ᵀK~1 · 1ᵀL~1 / ((n-1)(n-2)) - 2/(n-2) · 1ᵀK~L~1 ] / (n(n-3))
func HSICUnbiased(k, l []float64, n int) (float64, error) {
	if err := checkGram(k, l, n, 4); err != nil {
		return 0, err
	}
	nf := float64(n)
	// Row sums of K~ and L~ (1ᵀK~ for K~ᵀ's sake: column sums, equal for
	// symmetric K), their totals, and tr(K~L~) = sum_{i!=j} K_ij L_ji.
	kr := make([]float64, n) // (1ᵀK~)_j: column sums of K~
	lr := make([]float64, n) // (L~1)_j: row sums of L~
	var tr float64
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			if i == j {
				continue
			}
			kr[j] += k[i*n+j]
			lr[i] += l[i*n+j]
			tr += k[i*n+j] * l[j*n+i]
		}
	}
	var ksum, lsum, kl float64
	for i := 0; i < n; i++ {
		ksum += kr[i]
		lsum += lr[i]
		kl += kr[i] * lr[i] // 1ᵀK~L~1 = sum_j (1ᵀK~)_j (L~1)_j
	}
	return (tr + ksum*lsum/((nf-1)*(nf-2)) - 2/(nf-2)*kl) / (nf * (nf - 3)), nil
}

// uCenter returns the U-centered form of the n×n Gram matrix k (symmetric):
// zero diagonal, and off the diagonal
//
//	U_ij = K_ij - r_i/(n-2) - r_j/(n-2) + s/((n-1)(n-2))
//
// with r the row sums and s the total of K~ (K with a zero diagonal). For
// symmetric K and L, sum_ij U(K)_ij U(L)_ij / (n(n-3)) equals HSICUnbiased(K, L)
// (Székely and Rizzo 2014), and U-centering first keeps the large shared terms
// out of the products. k is overwritten.
func uCenter(k []float64, n int) []float64 {
	r := make([]float64, n)
	var s float64
	for i := 0; i < n; i++ {
		k[i*n+i] = 0
		var rs float64
		for j := 0; j < n; j++ {
			rs += k[i*n+j]
		}
		r[i] = rs
		s += rs
	}
	nf := float64(n)
	c := s / ((nf - 1) * (nf - 2))
	for i := 0; i < n; i++ {
		ri := r[i] / (nf - 2)
		for j := 0; j < n; j++ {
			if i != j {
				k[i*n+j] += c - ri - r[j]/(nf-2)
			}
		}
	}
	return k
}
