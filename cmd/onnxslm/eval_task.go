package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/onnxslm/onnxslm/harness"
	"github.com/onnxslm/onnxslm/internal/builtin"
	"github.com/onnxslm/onnxslm/lm"
	"github.com/onnxslm/onnxslm/runtime"
	"github.com/onnxslm/onnxslm/tokenizer"
)

// taskFlags are eval's flags for multiple-choice tasks.
type taskFlags struct {
	tasks     []string
	format    string
	tokenizer string
	delimiter string
	maxLength int
}

func addTaskFlags(fs *pflag.FlagSet) *taskFlags {
	t := &taskFlags{}
	fs.StringArrayVar(&t.tasks, "task", nil, "multiple-choice task: JSON Lines file, or builtin:go-next-line (repeat for several tasks: a table)")
	fs.StringVar(&t.format, "task-format", "auto", "task fields: auto, "+taskFormatNames()+", or context=FIELD,choices=FIELD,gold=FIELD")
	fs.StringVar(&t.tokenizer, "tokenizer", "", "Hugging Face tokenizer.json for --task (vocab-256 models: byte-level without it)")
	fs.StringVar(&t.delimiter, "target-delimiter", " ", "text between the context and each choice (the harness's target_delimiter; built-in tasks set their own)")
	fs.IntVar(&t.maxLength, "max-length", 0, "truncate inputs from the left to this many tokens (0: the model's own, from its metadata or its position table, else no limit)")
	return t
}

func taskFormatNames() string {
	var names []string
	for _, f := range harness.Formats {
		names = append(names, f.Name)
	}
	return strings.Join(names, ", ")
}

// loadTasks reads every --task.
func (tf *taskFlags) load() ([]*harness.Task, error) {
	format, err := harness.ParseFormat(tf.format)
	if err != nil {
		return nil, usagef("--task-format: %v", err)
	}
	var tasks []*harness.Task
	seen := map[string]bool{}
	for _, name := range tf.tasks {
		var t *harness.Task
		if builtin.IsBuiltin(name) {
			t, err = builtin.Task(name)
		} else {
			t, err = harness.ReadTask(name, format)
			if err == nil {
				t.Delimiter = tf.delimiter
			}
		}
		if err != nil {
			return nil, err
		}
		for base, i := t.Name, 2; seen[t.Name]; i++ {
			t.Name = base + "#" + strconv.Itoa(i)
		}
		seen[t.Name] = true
		tasks = append(tasks, t)
	}
	return tasks, nil
}

// taskTokenizer is the tokenizer for --task: the file given, else bytes for a
// vocab-256 model.
func taskTokenizer(path string, vocab int) (tokenizer.Tokenizer, string, error) {
	if path != "" {
		tok, err := tokenizer.Load(path, tokenizer.WithSpecialTokens(false))
		if err != nil {
			return nil, "", err
		}
		if tok.VocabSize() > vocab {
			return nil, "", fmt.Errorf("tokenizer %s has %d ids, the model only %d", path, tok.VocabSize(), vocab)
		}
		return tok, path, nil
	}
	if vocab != 256 {
		return nil, "", usagef("a model with a vocabulary of %d needs --tokenizer tokenizer.json (byte-level ids need 256)", vocab)
	}
	return tokenizer.Bytes(), "byte-level", nil
}

// modelMaxLength is the longest sequence the model takes (lm.MaxPositions),
// 0 when it cannot tell.
func modelMaxLength(s *runtime.Session) int { return lm.MaxPositions(s) }

// tasksReport is what `onnxslm eval --task ... --json` prints: per task the
// harness's fields, under results keyed by task name.
type tasksReport struct {
	Model     string                     `json:"model"`
	Tokenizer string                     `json:"tokenizer"`
	MaxLength int                        `json:"max_length"`
	Results   map[string]*harness.Result `json:"results"`
	Average   *harness.Result            `json:"average,omitempty"`
	Tasks     []string                   `json:"tasks"`
}

func runTasks(ctx context.Context, io *stdio, modelArg string, tf *taskFlags, batch, threads int, asJSON bool) error {
	if tf.maxLength < 0 {
		return usagef("--max-length must be 0 or more, got %d", tf.maxLength)
	}
	tasks, err := tf.load()
	if err != nil {
		return err
	}
	s, vocab, err := openModel(modelArg, threads)
	if err != nil {
		return err
	}
	tok, tokName, err := taskTokenizer(tf.tokenizer, vocab)
	if err != nil {
		return err
	}
	maxLen := tf.maxLength
	if maxLen == 0 {
		maxLen = modelMaxLength(s)
	}
	model := &harness.Model{Session: s, MaxLength: maxLen}
	rep := tasksReport{Model: modelArg, Tokenizer: tokName, MaxLength: maxLen, Results: map[string]*harness.Result{}}
	var results []*harness.Result
	for _, t := range tasks {
		if !asJSON {
			fmt.Fprintf(io.Stderr, "eval: %s: %d examples, format %s (%s)\n", t.Source, len(t.Examples), t.Format, formatFields(t.Format))
		}
		opts := harness.Options{Batch: batch}
		if io.Terminal && !asJSON {
			opts.Progress = func(done, total int) {
				fmt.Fprintf(io.Stderr, "\reval: %s %d/%d examples", t.Name, done, total)
				if done == total {
					fmt.Fprintln(io.Stderr)
				}
			}
		}
		r, err := harness.Evaluate(ctx, t, tok, model, opts)
		if err != nil {
			return fmt.Errorf("%s: %w", modelArg, err)
		}
		rep.Results[t.Name] = r
		rep.Tasks = append(rep.Tasks, t.Name)
		results = append(results, r)
	}
	if len(results) > 1 {
		rep.Average = harness.Average(results)
	}
	if asJSON {
		enc := json.NewEncoder(io.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	w := tabwriter.NewWriter(io.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "task\tn\tacc\t± stderr\tacc_norm\t± stderr\n")
	row := func(name string, r *harness.Result) {
		fmt.Fprintf(w, "%s\t%d\t%.4f\t%s\t%.4f\t%s\n", name, r.N, r.Acc, fmtSE(r.AccStderr), r.AccNorm, fmtSE(r.AccNormStderr))
	}
	for _, r := range results {
		row(r.Task, r)
	}
	if rep.Average != nil {
		row("average", rep.Average)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(io.Stderr, "eval: %s, tokenizer %s, %d tokens run\n", modelArg, tokName, model.InputTokens)
	return nil
}

func fmtSE(se *float64) string {
	if se == nil {
		return "N/A"
	}
	return fmt.Sprintf("%.4f", *se)
}

func formatFields(name string) string {
	for _, f := range harness.Formats {
		if f.Name == name {
			return strings.Join(f.Fields, ", ")
		}
	}
	return "fields given by --task-format"
}
