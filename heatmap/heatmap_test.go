package heatmap

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/npy"
)

// decode writes m with opts and decodes the PNG, also returning where the
// cells were drawn.
func decode(t *testing.T, m [][]float64, opts Options) (image.Image, cells) {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, m, opts); err != nil {
		t.Fatalf("Write: %v", err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatalf("decoding the PNG: %v", err)
	}
	_, where, err := render(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	return img, where
}

// centre is the colour at the middle of cell (i, j).
func centre(img image.Image, w cells, i, j int) color.NRGBA {
	x := (w.xs[j] + w.xs[j+1]) / 2
	y := (w.ys[i] + w.ys[i+1]) / 2
	return color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
}

// luma is the colour's brightness (Rec. 601 weights), 0-255.
func luma(c color.NRGBA) float64 {
	return 0.299*float64(c.R) + 0.587*float64(c.G) + 0.114*float64(c.B)
}

func TestSizeAndDirection(t *testing.T) {
	m := [][]float64{
		{1.0, 0.2, 0.1},
		{0.2, 1.0, 0.3},
		{0.1, 0.3, 1.0},
	}
	tests := []struct {
		name         string
		opts         Options
		wantW, wantH int
	}{
		{"default size", Options{Title: "t", XLabel: "layer", YLabel: "layer"}, 640, 560},
		{"custom size", Options{Width: 900, Height: 300}, 900, 300},
		{"range 0-1", Options{Min: 0, Max: 1, Width: 400, Height: 400}, 400, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, w := decode(t, m, tt.opts)
			if b := img.Bounds(); b.Dx() != tt.wantW || b.Dy() != tt.wantH {
				t.Fatalf("got size %d×%d, want %d×%d", b.Dx(), b.Dy(), tt.wantW, tt.wantH)
			}
			hi, lo := centre(img, w, 1, 1), centre(img, w, 0, 2)
			if luma(hi) <= luma(lo)+50 {
				t.Errorf("got high cell %v (luma %.0f) not clearly brighter than low cell %v (luma %.0f)", hi, luma(hi), lo, luma(lo))
			}
			// viridis: high values are yellow, low ones purple-blue.
			if !(hi.R > hi.B && hi.G > hi.B) {
				t.Errorf("got high cell %v, want yellowish (R and G above B)", hi)
			}
			if !(lo.B > lo.G) {
				t.Errorf("got low cell %v, want bluish (B above G)", lo)
			}
			// Cells are square (within a pixel of rounding).
			if dx, dy := w.xs[3]-w.xs[0], w.ys[0]-w.ys[3]; absInt(dx-dy) > 1 {
				t.Errorf("got a %d×%d pixel grid of cells, want square", dx, dy)
			}
		})
	}
}

// A matrix with two blocks shows two blocks: cells inside a block share one
// colour, cells across blocks another, and every pixel of a cell has its
// cell's colour (no seams between cells).
func TestBlocks(t *testing.T) {
	const n = 6
	m := square(n, func(i, j int) float64 {
		if (i < 3) == (j < 3) {
			return 0.9
		}
		return 0.1
	})
	img, w := decode(t, m, Options{Title: "blocks", Min: 0, Max: 1})
	in, across := centre(img, w, 0, 0), centre(img, w, 0, 5)
	if in == across {
		t.Fatalf("got the same colour %v inside and across blocks", in)
	}
	for i := range n {
		for j := range n {
			want := across
			if (i < 3) == (j < 3) {
				want = in
			}
			for y := w.ys[i+1]; y < w.ys[i]; y++ {
				for x := w.xs[j]; x < w.xs[j+1]; x++ {
					if got := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA); got != want {
						t.Fatalf("cell (%d,%d) pixel (%d,%d): got %v, want %v", i, j, x, y, got, want)
					}
				}
			}
		}
	}
}

// Row 0 is drawn at the bottom, column 0 at the left.
func TestOrientation(t *testing.T) {
	m := [][]float64{{1, 0}, {0, 0}}
	img, w := decode(t, m, Options{})
	if w.ys[0] <= w.ys[2] || w.xs[0] >= w.xs[2] {
		t.Fatalf("got cell edges xs %v ys %v, want row 0 lowest and column 0 leftmost", w.xs, w.ys)
	}
	bottomLeft := color.NRGBAModel.Convert(img.At(w.xs[0]+2, w.ys[0]-2)).(color.NRGBA)
	topRight := color.NRGBAModel.Convert(img.At(w.xs[2]-2, w.ys[2]+2)).(color.NRGBA)
	if luma(bottomLeft) <= luma(topRight) {
		t.Errorf("got bottom-left %v not brighter than top-right %v, want m[0][0] at the bottom left", bottomLeft, topRight)
	}
}

func TestDeterministic(t *testing.T) {
	m := [][]float64{{1, 0.5}, {0.5, 1}}
	opts := Options{Title: "same bytes", XLabel: "x", YLabel: "y"}
	var a, b bytes.Buffer
	if err := Write(&a, m, opts); err != nil {
		t.Fatal(err)
	}
	if err := Write(&b, m, opts); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Errorf("got %d and %d bytes that differ, want identical PNGs", a.Len(), b.Len())
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		m    [][]float64
		opts Options
		want string
	}{
		{"empty", nil, Options{}, "empty matrix"},
		{"not square", [][]float64{{1, 2, 3}, {4, 5, 6}}, Options{}, "not square: row 0 has 3 values, want 2"},
		{"ragged", [][]float64{{1, 2}, {3}}, Options{}, "row 1 has 1 values, want 2"},
		{"NaN", [][]float64{{1, math.NaN()}, {0, 1}}, Options{}, "m[0][1] is NaN"},
		{"Inf", [][]float64{{1, 0}, {math.Inf(-1), 1}}, Options{}, "m[1][0] is -Inf"},
		{"range", [][]float64{{1}}, Options{Min: 1, Max: 0.5}, "bad colour range"},
		{"huge span", [][]float64{{math.MaxFloat64, 0}, {-math.MaxFloat64, 1}}, Options{}, "span more than"},
		{"huge constant", [][]float64{{math.MaxFloat64}}, Options{}, "span more than"},
		{"infinite range", [][]float64{{1}}, Options{Min: -math.MaxFloat64, Max: math.MaxFloat64}, "bad colour range"},
		{"too small", [][]float64{{1}}, Options{Width: 10, Height: 10}, "size 10×10"},
		{"negative", [][]float64{{1}}, Options{Width: -5}, "size -5×560"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Write(&buf, tt.m, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got error %v, want one containing %q", err, tt.want)
			}
			if buf.Len() != 0 {
				t.Errorf("got %d bytes written on error, want none", buf.Len())
			}
		})
	}
}

// Values outside an explicit range take the colour of its nearer end; a
// constant matrix (automatic range) still draws.
func TestRangeEdges(t *testing.T) {
	img, w := decode(t, [][]float64{{5, -5}, {0.5, 1}}, Options{Min: 0, Max: 1})
	if got, want := centre(img, w, 0, 0), centre(img, w, 1, 1); got != want {
		t.Errorf("value above Max: got %v, want the colour of Max %v", got, want)
	}
	if got, want := centre(img, w, 0, 1), viridis(0); got != want {
		t.Errorf("value below Min: got %v, want %v", got, want)
	}
	img, w = decode(t, [][]float64{{3, 3}, {3, 3}}, Options{})
	if got, want := centre(img, w, 0, 0), viridis(0.5); got != want {
		t.Errorf("constant matrix: got %v, want the middle colour %v", got, want)
	}
}

func TestManyLayers(t *testing.T) {
	const n = 80
	m := square(n, func(i, j int) float64 { return 1 / (1 + math.Abs(float64(i-j))) })
	img, w := decode(t, m, Options{Title: "80 layers"})
	if len(w.xs) != n+1 {
		t.Fatalf("got %d cell edges, want %d", len(w.xs), n+1)
	}
	for k := range n {
		if w.xs[k+1] <= w.xs[k] || w.ys[k+1] >= w.ys[k] {
			t.Fatalf("cell %d has no pixels: xs %d..%d ys %d..%d", k, w.xs[k], w.xs[k+1], w.ys[k+1], w.ys[k])
		}
	}
	if luma(centre(img, w, 40, 40)) <= luma(centre(img, w, 0, 79)) {
		t.Errorf("diagonal not brighter than the far corner")
	}
	ticks := layerTicks(n)
	labels := 0
	for _, tk := range ticks {
		if tk.Label != "" {
			labels++
		}
	}
	if labels > maxLabels {
		t.Errorf("got %d tick labels for %d layers, want at most %d", labels, n, maxLabels)
	}
}

func TestScaleTicks(t *testing.T) {
	tests := []struct {
		lo, hi float64
		want   string
	}{
		{0, 1, "0.0 0.2 0.4 0.6 0.8 1.0"},
		{0.6, 1, "0.6 0.7 0.8 0.9 1.0"},
		{0.55, 0.98, "0.6 0.7 0.8 0.9"},
		{-1, 1, "-1.0 -0.5 0.0 0.5 1.0"},
		{0, 0.25, "0.00 0.05 0.10 0.15 0.20 0.25"},
		{0, 12, "0 2 4 6 8 10 12"},
		{0, 14, "0.0 2.5 5.0 7.5 10.0 12.5"},
		{0, 100, "0 20 40 60 80 100"},
	}
	// A span too small for the magnitude must still end.
	if got := scaleTicks(1e300, 1e300*(1+1e-15)); len(got) > 12 {
		t.Errorf("scaleTicks on a tiny span at 1e300: got %d ticks, want at most 12", len(got))
	}
	for _, tt := range tests {
		var got []string
		for _, tk := range scaleTicks(tt.lo, tt.hi) {
			got = append(got, tk.Label)
		}
		if s := strings.Join(got, " "); s != tt.want {
			t.Errorf("scaleTicks(%v, %v): got %q, want %q", tt.lo, tt.hi, s, tt.want)
		}
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cka.png")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := [][]float64{{1, 0.5}, {0.5, 1}}
	if err := WriteFile(path, m, Options{}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("the file is not a PNG: %v", err)
	}
	if fi, _ := f.Stat(); fi.Mode().Perm() != 0o644 {
		t.Errorf("got mode %v, want 0644", fi.Mode().Perm())
	}
	// Nothing else is left in the folder, also when writing fails.
	if err := WriteFile(path, [][]float64{{math.NaN()}}, Options{}); err == nil {
		t.Errorf("got no error for a NaN matrix")
	}
	if err := WriteFile(filepath.Join(dir, "missing", "x.png"), m, Options{}); err == nil {
		t.Errorf("got no error for a missing folder")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("got files %v in the folder, want only cka.png", names)
	}
}

// The shared llama8 CKA matrix: adjacent layers are more alike than distant
// ones, so the diagonal band is brighter than the far corners. Set
// ONNXSLM_HEATMAP_OUT to a folder to keep the picture for a look.
func TestLlama8CKA(t *testing.T) {
	a, err := npy.Read(testenv.TestFile(t, "llama8.cka.npy"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := a.Float64s()
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Shape) != 2 || a.Shape[0] != a.Shape[1] {
		t.Fatalf("got shape %v, want square", a.Shape)
	}
	n := a.Shape[0]
	m := make([][]float64, n)
	for i := range m {
		m[i] = v[i*n : (i+1)*n]
	}
	opts := Options{Title: "llama8: linear CKA of layer outputs", XLabel: "layer", YLabel: "layer", Max: 1}
	img, w := decode(t, m, opts)
	for i := range n {
		if d, c := luma(centre(img, w, i, i)), luma(centre(img, w, 0, n-1)); d <= c {
			t.Errorf("diagonal cell %d (luma %.0f) not brighter than corner (0,%d) (luma %.0f)", i, d, n-1, c)
		}
	}
	if out := os.Getenv("ONNXSLM_HEATMAP_OUT"); out != "" {
		if err := WriteFile(filepath.Join(out, "llama8.cka.png"), m, opts); err != nil {
			t.Fatal(err)
		}
	}
}

func absInt(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// square returns the n×n matrix whose cell (i, j) is f(i, j).
func square(n int, f func(i, j int) float64) [][]float64 {
	m := make([][]float64, n)
	for i := range m {
		m[i] = make([]float64, n)
		for j := range m[i] {
			m[i][j] = f(i, j)
		}
	}
	return m
}
