package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/onnxslm/onnxslm/lm"
	"github.com/onnxslm/onnxslm/tokens"
)

func init() {
	register(&command{
		Name:    "eval",
		Args:    "MODEL (--tokens FILE | --task FILE.jsonl ...)",
		Summary: "Perplexity on a token set, or zero-shot multiple-choice accuracy (acc, acc_norm) scored as lm-evaluation-harness does, run in Go.",
		Flags: func(fs *pflag.FlagSet) func(ctx context.Context, io *stdio, args []string) error {
			tokFile := fs.String("tokens", "", "token ids: .npy (int64 or int32, [N, T]) or .txt (one sequence per line, space-separated)")
			batch := fs.Int("batch", 8, "sequences (with --task: choices) per forward pass")
			threads := fs.Int("threads", 0, "goroutines per kernel (0: all cores)")
			asJSON := fs.Bool("json", false, "print one JSON object on stdout")
			tf := addTaskFlags(fs)
			return func(ctx context.Context, io *stdio, args []string) error {
				if len(args) != 1 {
					return usagef("eval takes one MODEL (a path or builtin:NAME), got %d arguments", len(args))
				}
				if *tokFile != "" && len(tf.tasks) > 0 {
					return usagef("give --tokens or --task, not both")
				}
				if *tokFile == "" && len(tf.tasks) == 0 {
					return usagef("eval needs --tokens FILE or --task FILE.jsonl")
				}
				if *batch < 1 {
					return usagef("--batch must be at least 1, got %d", *batch)
				}
				if *threads < 0 {
					return usagef("--threads must be 0 (all cores) or more, got %d", *threads)
				}
				if len(tf.tasks) > 0 {
					return runTasks(ctx, io, args[0], tf, *batch, *threads, *asJSON)
				}
				return runEval(ctx, io, args[0], *tokFile, *batch, *threads, *asJSON)
			}
		},
	})
}

// evalReport is what `onnxslm eval --json` prints.
type evalReport struct {
	Model           string  `json:"model"`
	TokensFile      string  `json:"tokens_file"`
	Sequences       int     `json:"sequences"`
	SeqLen          int     `json:"seq_len"`
	Batch           int     `json:"batch"`
	Perplexity      float64 `json:"perplexity"`
	MeanNLL         float64 `json:"mean_nll"`
	Tokens          int     `json:"tokens"`
	InputTokens     int     `json:"input_tokens"`
	Seconds         float64 `json:"seconds"`
	TokensPerSecond float64 `json:"tokens_per_second"`
}

func runEval(ctx context.Context, io *stdio, modelArg, tokFile string, batch, threads int, asJSON bool) error {
	s, vocab, err := openModel(modelArg, threads)
	if err != nil {
		return err
	}
	set, err := tokens.Read(tokFile)
	if err != nil {
		return err
	}
	if set.Len() == 0 {
		return fmt.Errorf("%s: no token sequences", tokFile)
	}
	if set.SeqLen() < 2 {
		return fmt.Errorf("%s: sequences of %d token(s) have nothing to predict", tokFile, set.SeqLen())
	}
	if err := set.Validate(vocab); err != nil {
		return err
	}
	opts := lm.Options{Batch: batch}
	if io.Terminal && !asJSON {
		opts.Progress = func(done, total int) {
			fmt.Fprintf(io.Stderr, "\reval: %d/%d sequences", done, total)
			if done == total {
				fmt.Fprintln(io.Stderr)
			}
		}
	}
	res, err := lm.Perplexity(ctx, s, set.Rows, opts)
	if err != nil {
		return fmt.Errorf("%s: %w", modelArg, err)
	}
	r := evalReport{
		Model: modelArg, TokensFile: tokFile, Sequences: set.Len(), SeqLen: set.SeqLen(), Batch: batch,
		Perplexity: res.Perplexity, MeanNLL: res.MeanNLL, Tokens: res.Tokens, InputTokens: res.InputTokens,
		Seconds: res.Seconds, TokensPerSecond: res.TokensPerSecond,
	}
	if asJSON {
		enc := json.NewEncoder(io.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	w := tabwriter.NewWriter(io.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "model\t%s\n", r.Model)
	fmt.Fprintf(w, "tokens file\t%s (%d sequences of %d)\n", r.TokensFile, r.Sequences, r.SeqLen)
	fmt.Fprintf(w, "perplexity\t%.4f\n", r.Perplexity)
	fmt.Fprintf(w, "mean NLL\t%.6f nats/token\n", r.MeanNLL)
	fmt.Fprintf(w, "tokens\t%d predicted (%d run)\n", r.Tokens, r.InputTokens)
	fmt.Fprintf(w, "speed\t%.0f tokens/s (%.2f s, batch %d)\n", r.TokensPerSecond, r.Seconds, r.Batch)
	return w.Flush()
}
