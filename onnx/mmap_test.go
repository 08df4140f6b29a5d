package onnx

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
	"unsafe"
)

// savedExternal writes tinyModel with its 1 KiB weight in external data and
// returns the model's path.
func savedExternal(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.onnx")
	if err := Save(tinyModel(), path, SaveOptions{External: ExternalAlways}); err != nil {
		t.Fatal(err)
	}
	return path
}

func within(b, region []byte) bool {
	if len(b) == 0 || len(region) == 0 {
		return false
	}
	p, lo := uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&region[0]))
	return p >= lo && p+uintptr(len(b)) <= lo+uintptr(len(region))
}

// loadSavedExternal loads the model savedExternal writes (its external data
// mapped where the platform maps) and closes it when t ends.
func loadSavedExternal(t *testing.T) (string, *Model) {
	t.Helper()
	path := savedExternal(t)
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return path, m
}

// Load gives external tensors raw_data inside a mapping of the data file
// (on Unix), with the values the file holds; inline tensors stay on the heap.
func TestLoadMapsExternalData(t *testing.T) {
	_, m := loadSavedExternal(t)
	w1, b1 := m.Proto.Graph.Initializer[0], m.Proto.Graph.Initializer[1]
	want := NewFloat32("w1", []int64{16, 16}, seq(256)).RawData
	if !bytes.Equal(w1.RawData, want) {
		t.Fatal("w1's bytes differ from what was saved")
	}
	if w1.ExternalData != nil || w1.DataLocation != nil {
		t.Error("w1 still refers to its file after Load")
	}
	if !mmapSupported {
		if len(m.maps) != 0 {
			t.Errorf("%d mappings where mapping is not supported", len(m.maps))
		}
		return
	}
	if len(m.maps) != 1 || len(m.mapped) != 1 {
		t.Fatalf("%d mappings, %d mapped tensors; want 1 and 1 (w1)", len(m.maps), len(m.mapped))
	}
	if !within(w1.RawData, m.maps[0]) {
		t.Error("w1's raw_data is not in the mapping of its data file")
	}
	if within(b1.RawData, m.maps[0]) {
		t.Error("inline b1 points into the mapping")
	}
	if cap(w1.RawData) != len(w1.RawData) {
		t.Errorf("w1's raw_data has capacity %d past its %d bytes: an append could write into the mapping", cap(w1.RawData), len(w1.RawData))
	}
	f, err := Float32s(w1)
	if err != nil {
		t.Fatal(err)
	}
	if uintptr(unsafe.Pointer(&f[0])) != uintptr(unsafe.Pointer(&w1.RawData[0])) {
		t.Error("Float32s copied a mapped float32 tensor instead of reading it in place")
	}
	if f[3] != seq(256)[3] {
		t.Errorf("w1[3] = %v, want %v", f[3], seq(256)[3])
	}
}

// The mapping is read-only: a write into a mapped tensor faults (turned into
// a panic here) and does not reach the file.
func TestMappedDataIsReadOnly(t *testing.T) {
	if !mmapSupported {
		t.Skip("external data is not memory-mapped on this OS")
	}
	path, m := loadSavedExternal(t)
	raw := m.Proto.Graph.Initializer[0].RawData
	before := raw[0]
	func() {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() {
			if recover() == nil {
				t.Error("writing into a mapped tensor did not fault")
			}
		}()
		raw[0] = before + 1
	}()
	data, err := os.ReadFile(path + ".data")
	if err != nil {
		t.Fatal(err)
	}
	if data[0] != before {
		t.Error("the write reached the data file")
	}
}

// Save copies from the mapping (it never writes into it), and a model saved
// from a mapped one, even over its own data file's name through a rename,
// loads with the same values.
func TestSaveFromMappedModel(t *testing.T) {
	path, m := loadSavedExternal(t)
	for _, mode := range []ExternalMode{ExternalNever, ExternalAlways} {
		out := filepath.Join(filepath.Dir(path), "out"+mode.String()+".onnx")
		if err := Save(m.Proto, out, SaveOptions{External: mode, Protect: m.InputFiles()}); err != nil {
			t.Fatal(err)
		}
		m2, err := Load(out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m2.Proto.Graph.Initializer[0].RawData, m.Proto.Graph.Initializer[0].RawData) {
			t.Errorf("%s: w1 differs after the round trip", mode)
		}
		m2.Close()
	}
}

// Close drops the mapped tensors' bytes (a later use fails a size check
// instead of faulting) and may be called twice; LoadGraphOnly maps nothing.
func TestModelClose(t *testing.T) {
	path := savedExternal(t)
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if mmapSupported && m.Proto.Graph.Initializer[0].RawData != nil {
		t.Error("a mapped tensor keeps its raw_data after Close")
	}
	if m.Proto.Graph.Initializer[1].RawData == nil {
		t.Error("Close dropped an inline tensor's bytes")
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := (*Model)(nil).Close(); err != nil {
		t.Errorf("nil Close: %v", err)
	}
	g, err := LoadGraphOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.maps) != 0 {
		t.Errorf("LoadGraphOnly mapped %d files", len(g.maps))
	}
}

// A load that fails after mapping a file releases the mapping and leaves no
// tensor pointing into it.
func TestFailedLoadUnmaps(t *testing.T) {
	dir := t.TempDir()
	m := tinyModel()
	w2 := NewFloat32("w2", []int64{16, 16}, seq(256))
	m.Graph.Initializer = append(m.Graph.Initializer, w2)
	path := filepath.Join(dir, "m.onnx")
	if err := Save(m, path, SaveOptions{External: ExternalAlways}); err != nil {
		t.Fatal(err)
	}
	// Cut the data file inside w2: w1 maps, w2 is past the end.
	if err := os.Truncate(path+".data", 1500); err != nil {
		t.Fatal(err)
	}
	ext := &externalData{path: path}
	defer ext.close()
	loaded, err := readModelFile(path)
	if err != nil {
		t.Fatal(err)
	}
	inits := loaded.Graph.Initializer
	if err := ext.resolve(inits[0]); err != nil {
		t.Fatal(err)
	}
	if err := ext.resolve(inits[2]); err == nil {
		t.Fatal("w2 past the end of the truncated file loaded")
	}
	if mmapSupported && len(ext.maps) != 1 {
		t.Fatalf("%d mappings after w1, want 1", len(ext.maps))
	}
	ext.unmap()
	if len(ext.maps) != 0 || inits[0].RawData != nil {
		t.Error("unmap left a mapping or a tensor pointing into it")
	}
	if _, err := Load(path); err == nil {
		t.Error("Load of the truncated model succeeded")
	}
}
