package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

func TestConvert(t *testing.T) {
	want := builtinModel(t).Proto
	cases := []struct {
		name  string
		flags []string
		files []string
	}{
		{"default (auto: small model stays inline)", nil, []string{"out.onnx"}},
		{"inline", []string{"--inline"}, []string{"out.onnx"}},
		{"external", []string{"--external-data"}, []string{"out.onnx", "out.onnx.data"}},
		{"external, data file named", []string{"--external-data", "--data-file", "w.bin"}, []string{"out.onnx", "w.bin"}},
	}
	for _, c := range cases {
		dir := t.TempDir()
		out := filepath.Join(dir, "out.onnx")
		code, stdout, stderr := runCLI(t, append([]string{"convert", "builtin:llama8", out}, c.flags...)...)
		if code != 0 || stdout != "" || !strings.HasPrefix(stderr, "wrote "+out) {
			t.Fatalf("%s: exit %d, stdout %q, stderr %q", c.name, code, stdout, stderr)
		}
		if files := testenv.DirNames(t, dir); !slices.Equal(files, c.files) {
			t.Errorf("%s: wrote %v, want %v", c.name, files, c.files)
		}
		got, err := onnx.Load(out)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !proto.Equal(got.Proto, want) {
			t.Errorf("%s: converted model differs from the input", c.name)
		}
	}
}

// Converting a file to a file (external and back) keeps the model and never
// touches the input files.
func TestConvertFileChain(t *testing.T) {
	src := testenv.TestModel(t, "gpt2_6")
	before, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	orig := testmodel.Load(t, src)
	dir := t.TempDir()
	ext := filepath.Join(dir, "ext.onnx")
	back := filepath.Join(dir, "back.onnx")
	if code, _, stderr := runCLI(t, "convert", "--external-data", src, ext); code != 0 {
		t.Fatalf("convert to external: exit %d: %s", code, stderr)
	}
	extData, _ := os.ReadFile(ext + ".data")
	if code, _, stderr := runCLI(t, "convert", ext, back, "--inline"); code != 0 {
		t.Fatalf("convert back inline: exit %d: %s", code, stderr)
	}
	got := testmodel.Load(t, back)
	if !proto.Equal(got.Proto, orig.Proto) {
		t.Errorf("model changed going external and back")
	}
	if after, _ := os.ReadFile(src); !bytes.Equal(after, before) {
		t.Errorf("input %s modified", src)
	}
	if after, _ := os.ReadFile(ext + ".data"); !bytes.Equal(after, extData) {
		t.Errorf("intermediate data file modified")
	}
	// Inline bytes are the same as the original file's (both deterministic
	// encodings of the same message by torch and by us need not match, but
	// converting twice must).
	again := filepath.Join(dir, "again.onnx")
	runCLI(t, "convert", back, again)
	a, _ := os.ReadFile(back)
	b, _ := os.ReadFile(again)
	if !bytes.Equal(a, b) {
		t.Errorf("converting the same model twice gave different bytes")
	}
}

// makeInput writes an input model with external data into dir and returns
// its path; edit, if not nil, changes the first external initializer.
func makeInput(t *testing.T, dir string, edit func(tp *pb.TensorProto)) string {
	t.Helper()
	in := filepath.Join(dir, "in.onnx")
	if err := onnx.Save(builtinModel(t).Proto, in, onnx.SaveOptions{External: onnx.ExternalAlways}); err != nil {
		t.Fatal(err)
	}
	if edit == nil {
		return in
	}
	m := testenv.ReadModelProto(t, in)
	for _, tp := range m.Graph.Initializer {
		if tp.GetDataLocation() == pb.TensorProto_EXTERNAL {
			edit(tp)
			break
		}
	}
	b, _ := proto.Marshal(m)
	if err := os.WriteFile(in, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return in
}

func setKey(tp *pb.TensorProto, key, value string) {
	for _, kv := range tp.ExternalData {
		if kv.GetKey() == key {
			kv.Value = proto.String(value)
			return
		}
	}
	tp.ExternalData = append(tp.ExternalData, &pb.StringStringEntryProto{Key: proto.String(key), Value: proto.String(value)})
}

func TestConvertErrors(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string) (args []string)
		code  int
		want  []string // substrings of the one-line error ($IN is replaced by the input path)
	}{
		{"truncated file", func(t *testing.T, dir string) []string {
			in := makeInput(t, dir, nil)
			b, _ := os.ReadFile(in)
			os.WriteFile(in, b[:len(b)/2], 0o644)
			return []string{in, filepath.Join(dir, "out.onnx")}
		}, 1, []string{"load $IN: not an ONNX model, or truncated"}},
		{"not an ONNX file", func(t *testing.T, dir string) []string {
			in := filepath.Join(dir, "in.onnx")
			os.WriteFile(in, []byte("#!/bin/sh\necho not a model\n"), 0o644)
			return []string{in, filepath.Join(dir, "out.onnx")}
		}, 1, []string{"load $IN: not an ONNX model"}},
		{"missing input", func(t *testing.T, dir string) []string {
			return []string{filepath.Join(dir, "in.onnx"), filepath.Join(dir, "out.onnx")}
		}, 1, []string{"load $IN: no such file or directory"}},
		{"missing external-data file", func(t *testing.T, dir string) []string {
			in := makeInput(t, dir, nil)
			os.Remove(in + ".data")
			return []string{in, filepath.Join(dir, "out.onnx")}
		}, 1, []string{"load $IN: initializer ", `external data "in.onnx.data": no such file or directory`}},
		{"offset past end", func(t *testing.T, dir string) []string {
			in := makeInput(t, dir, func(tp *pb.TensorProto) { setKey(tp, "offset", "999999999") })
			return []string{in, filepath.Join(dir, "out.onnx")}
		}, 1, []string{"load $IN: initializer ", `external data "in.onnx.data": offset 999999999 `, "past end of file"}},
		{"length past end", func(t *testing.T, dir string) []string {
			in := makeInput(t, dir, func(tp *pb.TensorProto) { setKey(tp, "length", "999999999") })
			return []string{in, filepath.Join(dir, "out.onnx")}
		}, 1, []string{"load $IN: initializer ", "+ length 999999999 past end of file"}},
		{"location with ..", func(t *testing.T, dir string) []string {
			in := makeInput(t, dir, func(tp *pb.TensorProto) { setKey(tp, "location", "../in.onnx.data") })
			return []string{in, filepath.Join(dir, "out.onnx")}
		}, 1, []string{"load $IN: initializer ", `external data "../in.onnx.data": location leaves the model's folder`}},
		{"absolute location", func(t *testing.T, dir string) []string {
			in := makeInput(t, dir, func(tp *pb.TensorProto) { setKey(tp, "location", filepath.Join(dir, "in.onnx.data")) })
			return []string{in, filepath.Join(dir, "out.onnx")}
		}, 1, []string{"load $IN: initializer ", "absolute location refused"}},
		{"terabyte claim", func(t *testing.T, dir string) []string {
			in := makeInput(t, dir, func(tp *pb.TensorProto) { tp.Dims = []int64{1 << 20, 1 << 20} })
			return []string{in, filepath.Join(dir, "out.onnx")}
		}, 1, []string{"load $IN: initializer ", "of float32 need 4398046511104"}},
		{"overflowing dims", func(t *testing.T, dir string) []string {
			in := makeInput(t, dir, func(tp *pb.TensorProto) { tp.Dims = []int64{1 << 40, 1 << 40} })
			return []string{in, filepath.Join(dir, "out.onnx")}
		}, 1, []string{"load $IN: initializer ", "element count overflows int64"}},
		{"OUT is IN", func(t *testing.T, dir string) []string {
			in := makeInput(t, dir, nil)
			return []string{in, in}
		}, 1, []string{"is the input model", "refusing to overwrite it"}},
		{"OUT is IN spelled differently", func(t *testing.T, dir string) []string {
			in := makeInput(t, dir, nil)
			return []string{in, dir + "/./in.onnx"}
		}, 1, []string{"refusing to overwrite"}},
		{"OUT is a hard link to IN", func(t *testing.T, dir string) []string {
			in := makeInput(t, dir, nil)
			link := filepath.Join(dir, "link.onnx")
			if err := os.Link(in, link); err != nil {
				t.Skip(err)
			}
			return []string{in, link}
		}, 1, []string{"refusing to overwrite"}},
		{"OUT is a symlink to IN", func(t *testing.T, dir string) []string {
			in := makeInput(t, dir, nil)
			link := filepath.Join(dir, "sym.onnx")
			if err := os.Symlink("in.onnx", link); err != nil {
				t.Skip(err)
			}
			return []string{in, link}
		}, 1, []string{"refusing to overwrite"}},
		{"OUT's data file is IN's", func(t *testing.T, dir string) []string {
			in := makeInput(t, dir, nil)
			return []string{in, filepath.Join(dir, "out.onnx"), "--external-data", "--data-file", "in.onnx.data"}
		}, 1, []string{"refusing to overwrite input file", "in.onnx.data"}},
		{"OUT's data file is IN", func(t *testing.T, dir string) []string {
			in := makeInput(t, dir, nil)
			return []string{in, filepath.Join(dir, "out.onnx"), "--external-data", "--data-file", "in.onnx"}
		}, 1, []string{"refusing to overwrite input file"}},
		{"OUT's folder missing", func(t *testing.T, dir string) []string {
			return []string{"builtin:llama8", filepath.Join(dir, "no", "out.onnx")}
		}, 1, []string{"save ", "no such file or directory"}},
		{"both modes", func(t *testing.T, dir string) []string {
			return []string{"--inline", "--external-data", "builtin:llama8", filepath.Join(dir, "out.onnx")}
		}, 2, []string{"--external-data and --inline exclude each other"}},
		{"one argument", func(t *testing.T, dir string) []string {
			return []string{"builtin:llama8"}
		}, 2, []string{"convert takes IN and OUT, got 1 arguments"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			args := c.setup(t, dir)
			before := map[string][]byte{}
			for _, f := range testenv.DirNames(t, dir) {
				before[f], _ = os.ReadFile(filepath.Join(dir, f))
			}
			code, stdout, stderr := runCLI(t, append([]string{"convert"}, args...)...)
			if code != c.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, c.code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if !strings.HasPrefix(stderr, "onnxslm convert: ") || c.code == 1 && strings.Count(stderr, "\n") != 1 {
				t.Errorf("stderr %q, want one line starting 'onnxslm convert: '", stderr)
			}
			for _, w := range c.want {
				w = strings.ReplaceAll(w, "$IN", filepath.Join(dir, "in.onnx"))
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
			// No output, no temporary file, inputs untouched.
			after := testenv.DirNames(t, dir)
			for _, f := range after {
				if _, ok := before[f]; !ok {
					t.Errorf("file %s left in the output folder", f)
				}
			}
			for f, b := range before {
				if got, _ := os.ReadFile(filepath.Join(dir, f)); !bytes.Equal(got, b) {
					t.Errorf("input file %s modified", f)
				}
			}
		})
	}
}

// The built-in model fed to convert is never an input file that could be
// overwritten, but the output path still cannot be a folder.
func TestConvertToFolder(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := runCLI(t, "convert", "builtin:llama8", dir)
	if code != 1 || !strings.Contains(stderr, "is a directory") {
		t.Errorf("exit %d, stderr %q; want 1 and 'is a directory'", code, stderr)
	}
}
