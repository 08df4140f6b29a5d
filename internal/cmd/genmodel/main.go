// Command genmodel writes a random-weight decoder model built in Go by
// internal/modelgen, for scale and memory measurements that need no PyTorch
// (../shared/tools/biglm needs python3-torch and writes float32 only):
//
//	go run ./internal/cmd/genmodel -layers 12 -d 512 -ffn 1408 -vocab 8000 -fp16 /tmp/fp16/m.onnx
//
// The weights go to OUT.data next to OUT (ONNX external data).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/onnx"
)

func main() {
	c := modelgen.Config{Arch: modelgen.Llama}
	flag.StringVar(&c.Arch, "arch", modelgen.Llama, "llama or gpt2")
	flag.IntVar(&c.Layers, "layers", 12, "decoder layers")
	flag.IntVar(&c.Hidden, "d", 512, "model width")
	flag.IntVar(&c.Heads, "heads", 8, "attention heads")
	flag.IntVar(&c.FFN, "ffn", 0, "MLP inner width (0: the architecture's default)")
	flag.IntVar(&c.Vocab, "vocab", 8000, "vocabulary size")
	flag.IntVar(&c.MaxPos, "max-pos", 256, "positions")
	flag.BoolVar(&c.Float16, "fp16", false, "float16 weights")
	flag.Int64Var(&c.Seed, "seed", 1, "weight seed")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: genmodel [flags] OUT.onnx")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	m, err := modelgen.Build(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "genmodel:", err)
		os.Exit(1)
	}
	if err := onnx.Save(m, flag.Arg(0), onnx.SaveOptions{External: onnx.ExternalAlways}); err != nil {
		fmt.Fprintln(os.Stderr, "genmodel:", err)
		os.Exit(1)
	}
}
