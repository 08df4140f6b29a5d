package main

import (
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAnalyzeJSONAndPNG analyses the built-in model on the built-in
// calibration set: one JSON object with the documented keys, a symmetric
// matrix with a unit diagonal, and a PNG heat map that decodes.
func TestAnalyzeJSONAndPNG(t *testing.T) {
	pngPath := filepath.Join(t.TempDir(), "cka.png")
	code, stdout, stderr := runCLI(t, "analyze", "builtin:llama8", "--png", pngPath, "--thresholds", "0.95,0.9", "--batch", "16", "--json", "-q")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, stderr)
	}
	obj := decodeOne(t, stdout)
	for _, k := range []string{"model", "layers", "kernel", "calibration", "cka", "adjacent_cka", "block_influence",
		"thresholds", "windows_by_threshold", "candidates_evaluated", "png"} {
		if _, ok := obj[k]; !ok {
			t.Errorf("JSON lacks key %q", k)
		}
	}
	if got, want := obj["layers"], 8.0; got != want {
		t.Fatalf("layers = %v, want %v", got, want)
	}
	if got, want := obj["kernel"], "linear"; got != want {
		t.Errorf("kernel = %v, want %v", got, want)
	}
	cka, ok := obj["cka"].([]any)
	if !ok || len(cka) != 8 {
		t.Fatalf("cka = %v, want 8 rows", obj["cka"])
	}
	for i, r := range cka {
		row := r.([]any)
		if len(row) != 8 {
			t.Fatalf("cka row %d has %d values, want 8", i, len(row))
		}
		if d := row[i].(float64); math.Abs(d-1) > 1e-9 {
			t.Errorf("cka[%d][%d] = %v, want 1", i, i, d)
		}
		for j := range row {
			if a, b := row[j].(float64), cka[j].([]any)[i].(float64); math.Abs(a-b) > 1e-12 {
				t.Errorf("cka[%d][%d] = %v but cka[%d][%d] = %v", i, j, a, j, i, b)
			}
		}
	}
	if got := len(obj["adjacent_cka"].([]any)); got != 7 {
		t.Errorf("adjacent_cka has %d values, want 7", got)
	}
	if got := len(obj["block_influence"].([]any)); got != 8 {
		t.Errorf("block_influence has %d values, want 8", got)
	}
	wbt := obj["windows_by_threshold"].(map[string]any)
	if len(wbt) != 2 {
		t.Errorf("windows_by_threshold has %d entries, want 2: %v", len(wbt), wbt)
	}
	for _, k := range []string{"0.95", "0.9"} {
		w, ok := wbt[k].(map[string]any)
		if !ok {
			t.Errorf("windows_by_threshold lacks %q", k)
			continue
		}
		for _, f := range []string{"windows", "layers", "similarity", "trace"} {
			if _, ok := w[f]; !ok {
				t.Errorf("windows_by_threshold[%q] lacks %q", k, f)
			}
		}
	}
	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the heat map is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 100 || b.Dy() < 100 {
		t.Errorf("heat map is %v, want a real picture", b)
	}
}

// TestAnalyzeText checks the readable summary on stdout and that nothing but
// results goes there.
func TestAnalyzeText(t *testing.T) {
	code, stdout, stderr := runCLI(t, "analyze", "builtin:llama8", "--thresholds", "0.95", "--kernel", "rbf", "--batch", "16")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{
		"layers       8",
		"CKA kernel   rbf(sigma=1*median distance)",
		"CKA between layer outputs",
		"CKA with next  block influence",
		"SLM windows (paper merge rule) by threshold",
		"0.95       7       0.9511      5..6",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "onnxslm:") {
		t.Errorf("stdout holds messages for people:\n%s", stdout)
	}
}

func TestAnalyzeUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"analyze"},
		{"analyze", "a.onnx", "b.onnx"},
		{"analyze", "builtin:llama8", "--kernel", "cosine"},
		{"analyze", "builtin:llama8", "--thresholds", "0"},
		{"analyze", "builtin:llama8", "--thresholds", "1.2"},
		{"analyze", "builtin:llama8", "--kernel", "rbf", "--rbf-factor", "-1"},
		{"analyze", "builtin:llama8", "--batch", "-1"},
		{"analyze", "builtin:llama8", "--threads", "-1"},
		{"analyze", "builtin:llama8", "--thresholds", ""},
	} {
		code, _, stderr := runCLI(t, args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, code, stderr)
		}
	}
	// An RBF bandwidth with the linear kernel was accepted and ignored.
	for _, args := range [][]string{
		{"analyze", "builtin:llama8", "--rbf-factor", "2"},
		{"analyze", "builtin:llama8", "--kernel", "linear", "--rbf-factor", "2"},
	} {
		code, _, stderr := runCLI(t, args...)
		if code != 2 || !strings.Contains(stderr, "--rbf-factor 2 with --kernel linear") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 naming both flags", args, code, stderr)
		}
	}
	if code, _, stderr := runCLI(t, "analyze", filepath.Join(t.TempDir(), "missing.onnx")); code != 1 || !strings.Contains(stderr, "missing.onnx") {
		t.Errorf("missing model: exit %d, stderr %q; want 1 naming the file", code, stderr)
	}
}
