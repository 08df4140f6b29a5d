package onnx

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// writeMessage writes the same bytes as a deterministic Marshal, whether it
// streams everything or nothing.
func TestWriteMessageMatchesMarshal(t *testing.T) {
	models := map[string]*pb.ModelProto{"rich": richModel()}
	if m, err := Load(testenv.TestModel(t, "gpt2_6")); err == nil {
		models["gpt2_6"] = m.Proto
	} else {
		t.Fatal(err)
	}
	for name, m := range models {
		want, err := marshalOpts.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, threshold := range []int{0, 1024, 1 << 40} {
			var buf bytes.Buffer
			w := bufio.NewWriter(&buf)
			if err := writeMessage(w, m.ProtoReflect(), threshold); err != nil {
				t.Fatal(err)
			}
			w.Flush()
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("%s, threshold %d: writeMessage wrote %d bytes differing from Marshal's %d", name, threshold, buf.Len(), len(want))
			}
		}
	}
}

// Saving twice gives byte-identical files.
func TestSaveDeterministic(t *testing.T) {
	m := richModel()
	for _, mode := range []ExternalMode{ExternalNever, ExternalAlways} {
		var got [2][]byte
		var data [2][]byte
		for i := range 2 {
			dir := t.TempDir()
			p := filepath.Join(dir, "m.onnx")
			if err := Save(m, p, SaveOptions{External: mode}); err != nil {
				t.Fatal(err)
			}
			got[i], _ = os.ReadFile(p)
			data[i], _ = os.ReadFile(p + ".data")
		}
		if !bytes.Equal(got[0], got[1]) || !bytes.Equal(data[0], data[1]) {
			t.Errorf("%v: two saves differ", mode)
		}
	}
}

func TestSaveOptions(t *testing.T) {
	m := tinyModel() // w1 is 1024 bytes, b1 64
	cases := []struct {
		name       string
		opts       SaveOptions
		files      []string
		externalW1 bool
	}{
		{"data file named", SaveOptions{External: ExternalAlways, DataFile: "weights.bin"}, []string{"m.onnx", "weights.bin"}, true},
		{"min bytes above every tensor: no data file", SaveOptions{External: ExternalAlways, MinExternalBytes: 1025}, []string{"m.onnx"}, false},
		{"min bytes at w1", SaveOptions{External: ExternalAlways, MinExternalBytes: 1024}, []string{"m.onnx", "m.onnx.data"}, true},
	}
	for _, c := range cases {
		dir := t.TempDir()
		p := filepath.Join(dir, "m.onnx")
		if err := Save(m, p, c.opts); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if files := testenv.DirNames(t, dir); !slices.Equal(files, c.files) {
			t.Errorf("%s: files %v, want %v", c.name, files, c.files)
		}
		b, _ := os.ReadFile(p)
		raw := &pb.ModelProto{}
		proto.Unmarshal(b, raw)
		if got := isExternal(raw.Graph.Initializer[0]); got != c.externalW1 {
			t.Errorf("%s: w1 external = %v, want %v", c.name, got, c.externalW1)
		}
		if isExternal(raw.Graph.Initializer[1]) {
			t.Errorf("%s: b1 (64 bytes) went external", c.name)
		}
		got, err := Load(p)
		if err != nil || !proto.Equal(got.Proto, m) {
			t.Errorf("%s: reload: %v, equal %v", c.name, err, err == nil && proto.Equal(got.Proto, m))
		}
	}
}

func TestSaveRefuses(t *testing.T) {
	loaded := func(t *testing.T, dir string) *Model {
		p := filepath.Join(dir, "in.onnx")
		if err := Save(tinyModel(), p, SaveOptions{External: ExternalAlways}); err != nil {
			t.Fatal(err)
		}
		m, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	cases := []struct {
		name string
		run  func(t *testing.T, dir string) (string, error)
		want string
	}{
		{"data file is the model", func(t *testing.T, dir string) (string, error) {
			p := filepath.Join(dir, "m.onnx")
			return p, Save(tinyModel(), p, SaveOptions{External: ExternalAlways, DataFile: "m.onnx"})
		}, `data file "m.onnx" is the model file itself`},
		{"data file with a folder", func(t *testing.T, dir string) (string, error) {
			p := filepath.Join(dir, "m.onnx")
			return p, Save(tinyModel(), p, SaveOptions{External: ExternalAlways, DataFile: "../w.bin"})
		}, `data file "../w.bin" must be a plain file name`},
		{"over the input model", func(t *testing.T, dir string) (string, error) {
			m := loaded(t, dir)
			return m.Path, Save(m.Proto, m.Path, SaveOptions{Protect: m.InputFiles()})
		}, "refusing to overwrite input file"},
		{"over the input model through a symlink", func(t *testing.T, dir string) (string, error) {
			m := loaded(t, dir)
			link := filepath.Join(dir, "link.onnx")
			if err := os.Symlink("in.onnx", link); err != nil {
				t.Skip(err)
			}
			return link, Save(m.Proto, link, SaveOptions{Protect: m.InputFiles()})
		}, "refusing to overwrite input file"},
		{"over the input's data file", func(t *testing.T, dir string) (string, error) {
			m := loaded(t, dir)
			p := filepath.Join(dir, "other.onnx")
			return p, Save(m.Proto, p, SaveOptions{External: ExternalAlways, DataFile: "in.onnx.data", Protect: m.InputFiles()})
		}, `refusing to overwrite input file`},
		{"external data not loaded", func(t *testing.T, dir string) (string, error) {
			m := tinyModel()
			setExternal(m.Graph.Initializer[0], "w.bin", "", "")
			p := filepath.Join(dir, "m.onnx")
			return p, Save(m, p, SaveOptions{})
		}, `initializer "w1": data is in an external file that was not loaded`},
		{"missing folder", func(t *testing.T, dir string) (string, error) {
			p := filepath.Join(dir, "no", "m.onnx")
			return p, Save(tinyModel(), p, SaveOptions{})
		}, "no such file or directory"},
		{"path is a folder", func(t *testing.T, dir string) (string, error) {
			return dir, Save(tinyModel(), dir, SaveOptions{})
		}, "is a directory"},
		{"bad tensor while writing the data file", func(t *testing.T, dir string) (string, error) {
			m := tinyModel()
			bad := NewFloat32("bad", []int64{1024}, seq(1024))
			bad.RawData = bad.RawData[:100]
			m.Graph.Initializer = append(m.Graph.Initializer, bad)
			p := filepath.Join(dir, "m.onnx")
			return p, Save(m, p, SaveOptions{External: ExternalAlways})
		}, `initializer "bad": raw_data has 100 bytes, dims [1024] of float32 need 4096`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p, err := c.run(t, dir)
			if err == nil || !strings.HasPrefix(err.Error(), "save "+p+": ") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got error %v, want %q", err, c.want)
			}
			// Nothing new, nothing changed, no temporary files left.
			for _, f := range testenv.DirNames(t, dir) {
				if !slices.Contains([]string{"in.onnx", "in.onnx.data", "link.onnx"}, f) {
					t.Errorf("file %s left behind", f)
				}
			}
			if in := filepath.Join(dir, "in.onnx"); fileExists(in) {
				if _, err := Load(in); err != nil {
					t.Errorf("input damaged: %v", err)
				}
			}
		})
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Save over an existing output replaces it atomically, keeping its mode 0644.
func TestSaveReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.onnx")
	os.WriteFile(p, []byte("old"), 0o600)
	if err := Save(tinyModel(), p, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("saved file mode %v, %v; want 0644", fi.Mode(), err)
	}
	if _, err := Load(p); err != nil {
		t.Error(err)
	}
}
