// Package heatmap draws a square matrix, such as the layer × layer CKA
// similarity of a model, as a PNG heat map with a colour bar, layer-index tick
// labels, axis labels and a title.
package heatmap

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Options describes the picture.
type Options struct {
	Title, XLabel, YLabel string
	// Min and Max are the values at the two ends of the colour scale. When
	// both are 0 they are the smallest and largest values of the matrix;
	// otherwise both are used as given (so Min 0, Max 1 is the range [0, 1]).
	// Values outside the range get the colour of its nearer end.
	Min, Max float64
	// Width and Height are the image's size in pixels; 0 means 640 × 560.
	// Text and lines scale with the smaller of the two.
	Width, Height int
}

const (
	defaultWidth  = 640
	defaultHeight = 560
	minSide       = 160
	maxSide       = 8192
	// At the default size the picture is drawn at 96 dots per inch.
	baseDPI  = 96
	baseSide = 560
	// Tick labels at most on this many cells per axis; others get minor ticks.
	maxLabels = 16
)

// Write draws m as a PNG heat map on w. Row i of m is drawn at height i
// (row 0 at the bottom), column j at x = j. It fails for an empty or
// non-square matrix, a NaN or infinite value, or a bad size or range.
func Write(w io.Writer, m [][]float64, opts Options) error {
	img, _, err := render(m, opts)
	if err != nil {
		return err
	}
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(w, img); err != nil {
		return fmt.Errorf("heatmap: encoding PNG: %w", err)
	}
	return nil
}

// WriteFile writes the heat map to path atomically: into a temporary file in
// the same folder, renamed over path once complete.
func WriteFile(path string, m [][]float64, opts Options) (err error) {
	var buf bytes.Buffer
	if err := Write(&buf, m, opts); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("heatmap: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("heatmap: writing %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("heatmap: %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("heatmap: writing %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("heatmap: %w", err)
	}
	return nil
}

// check validates m and returns its size.
func check(m [][]float64) (int, error) {
	n := len(m)
	if n == 0 {
		return 0, fmt.Errorf("heatmap: empty matrix")
	}
	for i, row := range m {
		if len(row) != n {
			return 0, fmt.Errorf("heatmap: matrix is not square: row %d has %d values, want %d", i, len(row), n)
		}
		for j, v := range row {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return 0, fmt.Errorf("heatmap: m[%d][%d] is %v", i, j, v)
			}
		}
	}
	return n, nil
}

// valueRange resolves Options.Min and Max against the data.
func valueRange(m [][]float64, opts Options) (lo, hi float64, err error) {
	if opts.Min != 0 || opts.Max != 0 {
		if math.IsNaN(opts.Min) || math.IsNaN(opts.Max) || math.IsInf(opts.Max-opts.Min, 0) || !(opts.Min < opts.Max) {
			return 0, 0, fmt.Errorf("heatmap: bad colour range [%v, %v]: want finite Min < Max", opts.Min, opts.Max)
		}
		return opts.Min, opts.Max, nil
	}
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, row := range m {
		for _, v := range row {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	if lo == hi {
		// A constant matrix: centre its colour on the scale.
		d := max(math.Abs(lo)*0.5, 0.5)
		lo, hi = lo-d, hi+d
	}
	if math.IsInf(hi-lo, 0) {
		return 0, 0, fmt.Errorf("heatmap: values from %v to %v span more than a float64 holds", lo, hi)
	}
	return lo, hi, nil
}

// cells gives where render drew the cells, in pixels (for tests): cell (i, j)
// covers columns [xs[j], xs[j+1]) and rows [ys[i+1], ys[i]); row 0 is at the
// bottom, so ys decreases.
type cells struct {
	xs, ys []int
}

// render draws the picture.
func render(m [][]float64, opts Options) (image.Image, cells, error) {
	n, err := check(m)
	if err != nil {
		return nil, cells{}, err
	}
	lo, hi, err := valueRange(m, opts)
	if err != nil {
		return nil, cells{}, err
	}
	wpx, hpx := opts.Width, opts.Height
	if wpx == 0 {
		wpx = defaultWidth
	}
	if hpx == 0 {
		hpx = defaultHeight
	}
	if wpx < minSide || hpx < minSide || wpx > maxSide || hpx > maxSide {
		return nil, cells{}, fmt.Errorf("heatmap: size %d×%d pixels: want each side in [%d, %d]", wpx, hpx, minSide, maxSide)
	}
	dpi := max(1, int(math.Round(float64(baseDPI*min(wpx, hpx))/baseSide)))
	cv := vgimg.NewWith(vgimg.UseImage(image.NewRGBA(image.Rect(0, 0, wpx, hpx))), vgimg.UseDPI(dpi))
	dc := draw.New(cv)
	px := func(v vg.Length) float64 { return v.Dots(float64(dpi)) }
	snap := func(v vg.Length) vg.Length { return vg.Length(math.Round(px(v))) * vg.Inch / vg.Length(dpi) }

	p := plot.New()
	p.Title.Text = opts.Title
	p.X.Label.Text = opts.XLabel
	p.Y.Label.Text = opts.YLabel
	p.Title.TextStyle.Font = sans(13)
	p.X.Label.TextStyle.Font = sans(12)
	p.Y.Label.TextStyle.Font = sans(12)
	p.X.Tick.Label.Font = sans(10)
	p.Y.Tick.Label.Font = sans(10)
	p.X.Tick.Marker = layerTicks(n)
	p.Y.Tick.Marker = layerTicks(n)
	p.X.Padding, p.Y.Padding = 0, 0
	g := &grid{m: m, n: n, lo: lo, hi: hi, snap: snap}
	p.Add(g)

	// The colour bar's ticks, and the room they take at the right.
	ticks := scaleTicks(lo, hi)
	labelStyle := p.Y.Tick.Label
	labelStyle.XAlign = draw.XLeft
	labelStyle.YAlign = draw.YCenter
	var labelW vg.Length
	for _, t := range ticks {
		labelW = max(labelW, labelStyle.Width(t.Label))
	}
	var (
		gap     = vg.Points(12)
		barW    = vg.Points(14)
		tickLen = vg.Points(4)
		margin  = vg.Points(8)
	)
	area := draw.Crop(dc, margin, -(gap + barW + tickLen + vg.Points(3) + labelW + margin), margin, -margin)

	// Make the cells square: shrink the longer side of the data area, keeping
	// the plot centred in the room it had.
	da := p.DataCanvas(area)
	if dw, dh := da.Max.X-da.Min.X, da.Max.Y-da.Min.Y; dw > dh {
		cut := (dw - dh) / 2
		area.Min.X += cut
		area.Max.X -= cut
	} else if dh > dw {
		cut := (dh - dw) / 2
		area.Min.Y += cut
		area.Max.Y -= cut
	}
	p.Draw(area)
	da = p.DataCanvas(area)

	// The colour bar, as tall as the cells, in one-pixel stripes.
	x0, x1 := snap(area.Max.X+gap), snap(area.Max.X+gap+barW)
	y0, y1 := snap(da.Min.Y), snap(da.Max.Y)
	rows := int(math.Round(px(y1) - px(y0)))
	step := (y1 - y0) / vg.Length(rows)
	for k := range rows {
		frac := (float64(k) + 0.5) / float64(rows)
		ya, yb := y0+vg.Length(k)*step, y0+vg.Length(k+1)*step
		dc.FillPolygon(viridis(frac), []vg.Point{{X: x0, Y: ya}, {X: x1, Y: ya}, {X: x1, Y: yb}, {X: x0, Y: yb}})
	}
	line := p.Y.LineStyle
	dc.StrokeLines(line, []vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}, {X: x0, Y: y0}})
	for _, t := range ticks {
		y := y0 + vg.Length(min(max((t.Value-lo)/(hi-lo), 0), 1))*(y1-y0)
		dc.StrokeLine2(p.Y.Tick.LineStyle, x1, y, x1+tickLen, y)
		dc.FillText(labelStyle, vg.Point{X: x1 + tickLen + vg.Points(3), Y: y}, t.Label)
	}

	var where cells
	for k := range n + 1 {
		where.xs = append(where.xs, int(math.Round(px(g.xs[k]))))
		where.ys = append(where.ys, hpx-int(math.Round(px(g.ys[k]))))
	}
	return cv.Image(), where, nil
}

// grid is the plotter of the cells. Cell edges fall on whole pixels so that
// neighbouring cells meet without anti-aliased seams.
type grid struct {
	m      [][]float64
	n      int
	lo, hi float64
	snap   func(vg.Length) vg.Length
	xs, ys []vg.Length // the cell edges, recorded for render
}

func (g *grid) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	xs := make([]vg.Length, g.n+1)
	ys := make([]vg.Length, g.n+1)
	for k := range g.n + 1 {
		xs[k] = g.snap(trX(float64(k) - 0.5))
		ys[k] = g.snap(trY(float64(k) - 0.5))
	}
	g.xs, g.ys = xs, ys
	for i := range g.n {
		for j := range g.n {
			frac := (g.m[i][j] - g.lo) / (g.hi - g.lo)
			c.FillPolygon(viridis(frac), []vg.Point{
				{X: xs[j], Y: ys[i]}, {X: xs[j+1], Y: ys[i]}, {X: xs[j+1], Y: ys[i+1]}, {X: xs[j], Y: ys[i+1]},
			})
		}
	}
}

func (g *grid) DataRange() (xmin, xmax, ymin, ymax float64) {
	return -0.5, float64(g.n) - 0.5, -0.5, float64(g.n) - 0.5
}

// layerTicks labels the cell centres 0..n-1, every step-th one when there are
// more than maxLabels, with minor ticks on the rest.
func layerTicks(n int) plot.ConstantTicks {
	step := 1
	for _, s := range []int{1, 2, 4, 5, 8, 10, 16, 20, 25, 50, 100, 200, 500, 1000} {
		step = s
		if (n+s-1)/s <= maxLabels {
			break
		}
	}
	ts := make(plot.ConstantTicks, n)
	for i := range n {
		ts[i].Value = float64(i)
		if i%step == 0 {
			ts[i].Label = strconv.Itoa(i)
		}
	}
	return ts
}

// sans is the text font: Liberation Sans, embedded in gonum/plot, so the
// picture does not depend on the fonts of the machine.
func sans(size vg.Length) font.Font {
	return font.Font{Typeface: "Liberation", Variant: "Sans", Size: size}
}

// scaleTicks returns labelled ticks at round values (steps of 1, 2, 2.5 or 5
// times a power of ten) in [lo, hi], at most 7 of them.
func scaleTicks(lo, hi float64) []plot.Tick {
	span := hi - lo
	mag := math.Pow(10, math.Floor(math.Log10(span)))
	step := mag
	for _, f := range []float64{0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10} {
		step = f * mag
		if span/step <= 6 {
			break
		}
	}
	prec := max(0, -int(math.Floor(math.Log10(step)+1e-9)))
	if step/math.Pow(10, -float64(prec)) != math.Round(step/math.Pow(10, -float64(prec))) {
		prec++ // 0.25, 2.5
	}
	var ts []plot.Tick
	k0 := math.Ceil(lo/step - 1e-9)
	for i := range 12 { // bounded even where k0+1 == k0
		v := (k0 + float64(i)) * step
		if v > hi+step*1e-9 {
			break
		}
		if math.Abs(v) < step*1e-9 {
			v = 0
		}
		ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', prec, 64)})
	}
	return ts
}

// viridisStops are 10 evenly spaced colours of the viridis colour map
// (perceptually uniform, readable in grey and by colour-blind readers).
var viridisStops = [...]color.NRGBA{
	{0x44, 0x01, 0x54, 0xff}, {0x48, 0x28, 0x78, 0xff}, {0x3e, 0x4a, 0x89, 0xff},
	{0x31, 0x68, 0x8e, 0xff}, {0x26, 0x82, 0x8e, 0xff}, {0x1f, 0x9e, 0x89, 0xff},
	{0x35, 0xb7, 0x79, 0xff}, {0x6d, 0xcd, 0x59, 0xff}, {0xb4, 0xde, 0x2c, 0xff},
	{0xfd, 0xe7, 0x25, 0xff},
}

// viridis returns the colour at frac in [0, 1] (clamped), interpolating
// linearly between the stops.
func viridis(frac float64) color.NRGBA {
	if math.IsNaN(frac) {
		frac = 0
	}
	frac = min(max(frac, 0), 1)
	pos := frac * float64(len(viridisStops)-1)
	k := min(int(pos), len(viridisStops)-2)
	t := pos - float64(k)
	a, b := viridisStops[k], viridisStops[k+1]
	mix := func(x, y uint8) uint8 { return uint8(math.Round(float64(x) + t*(float64(y)-float64(x)))) }
	return color.NRGBA{mix(a.R, b.R), mix(a.G, b.G), mix(a.B, b.B), 0xff}
}
