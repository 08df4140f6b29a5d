// Command genmodel writes a random-weight decoder model built in Go by
// internal/modelgen, for scale and memory measurements that need no PyTorch
// (../shared/tools/biglm needs python3-torch and writes float32 only):
//
//	go run ./internal/cmd/genmodel -layers 12 -d 512 -ffn 1408 -vocab 8000 -dtype float16 /tmp/fp16/m.onnx
//
// TinyLlama's shape (1.26 B parameters, 2.52 GB in float16) and a 7B shape:
//
//	genmodel -layers 22 -d 2048 -heads 32 -kv-heads 4 -ffn 5632 -vocab 32000 -dtype float16 m.onnx
//	genmodel -layers 32 -d 4096 -heads 32 -kv-heads 8 -ffn 11008 -vocab 32000 -dtype float16 m.onnx
//
// The weights go to OUT.data next to OUT (ONNX external data), written as they
// are generated (modelgen.Stream): memory is about the largest tensor, not
// the model.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/onnxslm/onnxslm/internal/modelgen"
)

func main() {
	c := modelgen.Config{Arch: modelgen.Llama}
	var dtype string
	var fp16 bool
	flag.StringVar(&c.Arch, "arch", modelgen.Llama, "llama or gpt2")
	flag.IntVar(&c.Layers, "layers", 12, "decoder layers")
	flag.IntVar(&c.Hidden, "d", 512, "model width")
	flag.IntVar(&c.Heads, "heads", 8, "attention heads")
	flag.IntVar(&c.KVHeads, "kv-heads", 0, "key/value heads, dividing -heads (0: -heads; fewer: grouped-query attention, llama only)")
	flag.IntVar(&c.FFN, "ffn", 0, "MLP inner width (0: the architecture's default)")
	flag.IntVar(&c.Vocab, "vocab", 8000, "vocabulary size")
	flag.IntVar(&c.MaxPos, "max-pos", 256, "positions")
	flag.StringVar(&dtype, "dtype", "float32", "weight storage: float32, float16 or bfloat16 (compute stays float32 behind a Cast)")
	flag.BoolVar(&fp16, "fp16", false, "same as -dtype float16")
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
	if fp16 {
		dtype = "float16"
	}
	switch dtype {
	case "float32":
	case "float16":
		c.Float16 = true
	case "bfloat16":
		c.BFloat16 = true
	default:
		fmt.Fprintf(os.Stderr, "genmodel: -dtype %q: want float32, float16 or bfloat16\n", dtype)
		os.Exit(2)
	}
	// Each tensor is garbage once written: collect sooner than the default
	// (100), so the peak stays near one tensor's copies (measured on the
	// 1.26 B fp16 shape before weights were drawn in place: 1.03 GB peak RSS
	// at 100, 0.74 GB at 25; 0.50 GB now).
	debug.SetGCPercent(25)
	if err := modelgen.Stream(c, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "genmodel:", err)
		os.Exit(1)
	}
}
