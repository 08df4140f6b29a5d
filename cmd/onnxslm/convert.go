package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/internal/builtin"
	"github.com/onnxslm/onnxslm/internal/units"
	"github.com/onnxslm/onnxslm/onnx"
)

func init() {
	register(&command{
		Name: "convert",
		Args: "IN OUT",
		Summary: "Re-save a model, inline or with its weights in one external-data file (OUT.data), unchanged otherwise.\n" +
			"By default the weights go external only when the model would pass the 2 GiB protobuf limit.",
		Flags: func(fs *pflag.FlagSet) func(ctx context.Context, io *stdio, args []string) error {
			external := fs.Bool("external-data", false, "put every initializer of 1 KiB or more in one external-data file beside OUT")
			inline := fs.Bool("inline", false, "put all data inside OUT (fails past the 2 GiB protobuf limit)")
			dataFile := fs.String("data-file", "", "name of the external-data file, beside OUT (default OUT's name + \".data\")")
			return func(ctx context.Context, io *stdio, args []string) error {
				if len(args) != 2 {
					return usagef("convert takes IN and OUT, got %d arguments", len(args))
				}
				if *external && *inline {
					return usagef("--external-data and --inline exclude each other")
				}
				opts := onnx.SaveOptions{External: onnx.ExternalAuto, DataFile: *dataFile}
				switch {
				case *external:
					opts.External = onnx.ExternalAlways
				case *inline:
					opts.External = onnx.ExternalNever
				}
				return runConvert(io, args[0], args[1], opts)
			}
		},
	})
}

func runConvert(io *stdio, in, out string, opts onnx.SaveOptions) error {
	if !builtin.IsBuiltin(in) && sameFileAs(in, out) {
		return fmt.Errorf("OUT %s is the input model %s: refusing to overwrite it", out, in)
	}
	m, err := loadModelFaithful(in)
	if err != nil {
		return err
	}
	opts.Protect = m.InputFiles()
	if err := onnx.Save(m.Proto, out, opts); err != nil {
		return err
	}
	fmt.Fprintf(io.Stderr, "wrote %s (%s)", out, fileSize(out))
	external := opts.External == onnx.ExternalAlways ||
		opts.External == onnx.ExternalAuto && int64(proto.Size(m.Proto)) > onnx.DefaultSizeLimit
	name := opts.DataFile
	if name == "" {
		name = filepath.Base(out) + ".data"
	}
	if data := filepath.Join(filepath.Dir(out), name); external && fileExists(data) {
		fmt.Fprintf(io.Stderr, " with external data %s (%s)", name, fileSize(data))
	}
	fmt.Fprintln(io.Stderr)
	return nil
}

func sameFileAs(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func fileSize(p string) string {
	fi, err := os.Stat(p)
	if err != nil {
		return "?"
	}
	return units.Bytes(uint64(fi.Size()))
}
