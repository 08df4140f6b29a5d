package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/onnxslm/onnxslm/lm"
	"github.com/onnxslm/onnxslm/tokenizer"
)

func init() {
	register(&command{
		Name:    "generate",
		Args:    "MODEL --prompt TEXT",
		Summary: "Continue a prompt with the model (greedy, or sampled with a seed), with its KV cache when it has one: see what a pruned model writes.",
		Flags: func(fs *pflag.FlagSet) func(ctx context.Context, io *stdio, args []string) error {
			prompt := fs.String("prompt", "", "the text to continue")
			tokPath := fs.String("tokenizer", "", "Hugging Face tokenizer.json (vocab-256 models: byte-level without it)")
			maxNew := fs.Int("max-new-tokens", 64, "tokens to generate")
			temp := fs.Float64("temperature", 0, "0: greedy; above 0: sample from softmax(logits/T)")
			seed := fs.Uint64("seed", 0, "seed of the sampler (with --temperature)")
			noCache := fs.Bool("no-cache", false, "run the whole sequence at every step even when the model has a KV cache")
			maxLen := fs.Int("max-length", 0, "stop when the sequence reaches this many tokens (0: the model's own, from its metadata or its position table, else no limit)")
			threads := fs.Int("threads", 0, "goroutines per kernel (0: all cores)")
			asJSON := fs.Bool("json", false, "print one JSON object on stdout instead of the text")
			return func(ctx context.Context, io *stdio, args []string) error {
				if len(args) != 1 {
					return usagef("generate takes one MODEL (a path or builtin:NAME), got %d arguments", len(args))
				}
				if *prompt == "" {
					return usagef("generate needs --prompt TEXT")
				}
				if *maxNew < 1 {
					return usagef("--max-new-tokens must be at least 1, got %d", *maxNew)
				}
				if *temp < 0 || *temp != *temp {
					return usagef("--temperature must be 0 (greedy) or more, got %v", *temp)
				}
				if *maxLen < 0 || *threads < 0 {
					return usagef("--max-length and --threads must be 0 or more")
				}
				opts := lm.GenerateOptions{MaxNewTokens: *maxNew, Temperature: *temp, Seed: *seed, NoCache: *noCache, MaxLength: *maxLen}
				return runGenerate(ctx, io, args[0], *prompt, *tokPath, *threads, *asJSON, opts)
			}
		},
	})
}

// generateReport is what `onnxslm generate --json` prints.
type generateReport struct {
	Model                  string  `json:"model"`
	Prompt                 string  `json:"prompt"`
	Text                   string  `json:"text"`
	PromptTokens           []int64 `json:"prompt_tokens"`
	Tokens                 []int64 `json:"tokens"`
	KVCache                bool    `json:"kv_cache"`
	Temperature            float64 `json:"temperature"`
	Seed                   uint64  `json:"seed"`
	PrefillTokensPerSecond float64 `json:"prefill_tokens_per_second"`
	DecodeTokensPerSecond  float64 `json:"decode_tokens_per_second"`
}

func runGenerate(ctx context.Context, io *stdio, modelArg, prompt, tokPath string, threads int, asJSON bool, opts lm.GenerateOptions) error {
	var tok tokenizer.Tokenizer
	var dec *detokenizer
	if tokPath != "" {
		var err error
		if tok, err = tokenizer.Load(tokPath); err != nil {
			return err
		}
		if dec, err = loadDetokenizer(tokPath); err != nil {
			return err
		}
	}
	s, vocab, err := openModel(modelArg, threads)
	if err != nil {
		return err
	}
	if tok == nil {
		if vocab != 256 {
			return usagef("a model with a vocabulary of %d needs --tokenizer tokenizer.json (byte-level ids need 256)", vocab)
		}
		tok = tokenizer.Bytes()
	}
	ids, err := tok.Encode(prompt)
	if err != nil {
		return fmt.Errorf("tokenize the prompt: %w", err)
	}
	if opts.MaxLength == 0 {
		opts.MaxLength = modelMaxLength(s)
	}
	text := func(ids []int64) string {
		if dec != nil {
			return dec.decode(ids)
		}
		b := make([]byte, len(ids))
		for i, id := range ids {
			b[i] = byte(id)
		}
		return string(b)
	}
	if !asJSON {
		fmt.Fprint(io.Stdout, prompt)
		opts.Token = func(id int64) { fmt.Fprint(io.Stdout, text([]int64{id})) }
	}
	g, err := lm.Generate(ctx, s, ids, opts)
	if err != nil {
		return fmt.Errorf("%s: %w", modelArg, err)
	}
	how := "no KV cache"
	if g.Cached {
		how = "KV cache"
	}
	if asJSON {
		enc := json.NewEncoder(io.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(generateReport{
			Model: modelArg, Prompt: prompt, Text: text(g.Tokens), PromptTokens: ids, Tokens: g.Tokens,
			KVCache: g.Cached, Temperature: opts.Temperature, Seed: opts.Seed,
			PrefillTokensPerSecond: g.PrefillTokensPerSecond(), DecodeTokensPerSecond: g.DecodeTokensPerSecond(),
		}); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(io.Stdout)
	}
	fmt.Fprintf(io.Stderr, "generate: prefill %d tokens, %.0f tokens/s; decode %d tokens, %.0f tokens/s (%s)\n",
		g.PromptTokens, g.PrefillTokensPerSecond(), max(len(g.Tokens)-1, 0), g.DecodeTokensPerSecond(), how)
	return nil
}

// detokenizer turns ids back into text from a tokenizer.json's vocabulary:
// byte-level BPE (GPT-2's byte-to-character table) or SentencePiece-style
// ("▁" for a space, <0xNN> byte tokens).
type detokenizer struct {
	pieces    map[int64]string
	byteLevel bool
}

func loadDetokenizer(path string) (*detokenizer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	var doc struct {
		Model struct {
			Vocab map[string]int64 `json:"vocab"`
		} `json:"model"`
		Added []struct {
			ID      int64  `json:"id"`
			Content string `json:"content"`
		} `json:"added_tokens"`
		Decoder      json.RawMessage `json:"decoder"`
		PreTokenizer json.RawMessage `json:"pre_tokenizer"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	d := &detokenizer{pieces: map[int64]string{}}
	for p, id := range doc.Model.Vocab {
		d.pieces[id] = p
	}
	for _, a := range doc.Added {
		d.pieces[a.ID] = a.Content
	}
	d.byteLevel = strings.Contains(string(doc.Decoder), `"ByteLevel"`) || strings.Contains(string(doc.PreTokenizer), `"ByteLevel"`)
	return d, nil
}

// byteOfChar inverts GPT-2's bytes_to_unicode: printable bytes stand for
// themselves, the others for 256+n in order.
var byteOfChar = func() map[rune]byte {
	m := map[rune]byte{}
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			m[rune(b)] = byte(b)
		} else {
			m[rune(256+n)] = byte(b)
			n++
		}
	}
	return m
}()

func (d *detokenizer) decode(ids []int64) string {
	var sb strings.Builder
	for _, id := range ids {
		p, ok := d.pieces[id]
		if !ok {
			fmt.Fprintf(&sb, "<%d>", id)
			continue
		}
		switch {
		case d.byteLevel:
			for _, r := range p {
				if b, ok := byteOfChar[r]; ok {
					sb.WriteByte(b)
				} else {
					sb.WriteRune(r)
				}
			}
		case len(p) == 6 && strings.HasPrefix(p, "<0x") && strings.HasSuffix(p, ">"):
			if v, err := strconv.ParseUint(p[3:5], 16, 8); err == nil {
				sb.WriteByte(byte(v))
				continue
			}
			sb.WriteString(p)
		default:
			sb.WriteString(strings.ReplaceAll(p, "▁", " "))
		}
	}
	return sb.String()
}
