// Package harness scores language models on multiple-choice tasks the way
// EleutherAI's lm-evaluation-harness does: task files, the context/continuation
// token boundary, log-likelihood sums, acc and acc_norm with standard errors.
package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Example is one multiple-choice question.
type Example struct {
	Context string
	Choices []string
	Gold    int
	Line    int // 1-based line of the task file it came from
}

// Task is a parsed task file.
type Task struct {
	Name     string // the file's base name without extension, or the built-in name
	Source   string // file path or built-in name, for messages
	Format   string // the format the examples were read with
	Examples []Example
	// Delimiter goes between the context and each choice (the harness's
	// target_delimiter, " " by default).
	Delimiter string
}

// MaxLineBytes bounds one line of a task file.
const MaxLineBytes = 16 << 20

// MaxChoices bounds the choices of one example.
const MaxChoices = 1024

// Format describes how a JSON object becomes an Example.
type Format struct {
	Name string
	// Fields says which fields the format needs, in the order they are named
	// in messages.
	Fields []string
	// Detect reports whether obj looks like this format.
	detect func(obj map[string]json.RawMessage) bool
	// Convert builds the example.
	convert func(obj map[string]json.RawMessage) (Example, error)
}

// Formats lists the known formats in the order auto-detection tries them.
var Formats = []*Format{
	{Name: "context", Fields: []string{"context", "choices", "gold"}},
	{Name: "query", Fields: []string{"query", "choices", "label|gold"}},
	{Name: "hellaswag", Fields: []string{"ctx", "endings", "label"}},
	{Name: "piqa", Fields: []string{"goal", "sol1", "sol2", "label"}},
	{Name: "arc", Fields: []string{"question", "choices.text", "choices.label", "answerKey"}},
	{Name: "openbookqa", Fields: []string{"question_stem", "choices.text", "choices.label", "answerKey"}},
	{Name: "boolq", Fields: []string{"passage", "question", "answer|label"}},
}

func init() {
	has := func(obj map[string]json.RawMessage, keys ...string) bool {
		for _, k := range keys {
			if _, ok := obj[k]; !ok {
				return false
			}
		}
		return true
	}
	byName := map[string]*Format{}
	for _, f := range Formats {
		byName[f.Name] = f
	}
	byName["context"].detect = func(o map[string]json.RawMessage) bool { return has(o, "context") }
	byName["context"].convert = func(o map[string]json.RawMessage) (Example, error) {
		return mapped(o, "context", "choices", "gold")
	}
	byName["query"].detect = func(o map[string]json.RawMessage) bool { return has(o, "query") }
	byName["query"].convert = func(o map[string]json.RawMessage) (Example, error) {
		gold := "label"
		if _, ok := o["label"]; !ok {
			gold = "gold"
		}
		return mapped(o, "query", "choices", gold)
	}
	byName["hellaswag"].detect = func(o map[string]json.RawMessage) bool { return has(o, "endings") }
	byName["hellaswag"].convert = hellaswag
	byName["piqa"].detect = func(o map[string]json.RawMessage) bool { return has(o, "goal", "sol1") }
	byName["piqa"].convert = piqa
	byName["arc"].detect = func(o map[string]json.RawMessage) bool { return has(o, "question", "answerKey") }
	byName["arc"].convert = func(o map[string]json.RawMessage) (Example, error) { return lettered(o, "question", true) }
	byName["openbookqa"].detect = func(o map[string]json.RawMessage) bool { return has(o, "question_stem") }
	byName["openbookqa"].convert = func(o map[string]json.RawMessage) (Example, error) {
		return lettered(o, "question_stem", false)
	}
	byName["boolq"].detect = func(o map[string]json.RawMessage) bool { return has(o, "passage", "question") }
	byName["boolq"].convert = boolq
}

// ParseFormat turns a --task-format value into a Format: "auto" (""), the
// name of a known format, or a field mapping
// "context=FIELD,choices=FIELD,gold=FIELD".
func ParseFormat(spec string) (*Format, error) {
	if spec == "" || spec == "auto" {
		return nil, nil
	}
	for _, f := range Formats {
		if f.Name == spec {
			return f, nil
		}
	}
	if !strings.Contains(spec, "=") {
		return nil, fmt.Errorf("unknown task format %q (have auto, %s, or context=FIELD,choices=FIELD,gold=FIELD)", spec, formatNames())
	}
	m := map[string]string{}
	for _, kv := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(kv, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || v == "" || (k != "context" && k != "choices" && k != "gold") {
			return nil, fmt.Errorf("task format %q: %q is not context=FIELD, choices=FIELD or gold=FIELD", spec, kv)
		}
		m[k] = v
	}
	for _, k := range []string{"context", "choices", "gold"} {
		if m[k] == "" {
			return nil, fmt.Errorf("task format %q: no %s=FIELD", spec, k)
		}
	}
	return &Format{
		Name:   spec,
		Fields: []string{m["context"], m["choices"], m["gold"]},
		detect: func(map[string]json.RawMessage) bool { return true },
		convert: func(o map[string]json.RawMessage) (Example, error) {
			return mapped(o, m["context"], m["choices"], m["gold"])
		},
	}, nil
}

func formatNames() string {
	names := make([]string, len(Formats))
	for i, f := range Formats {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}

// ReadTask reads a JSON Lines task file (see Parse).
func ReadTask(path string, format *Format) (*Task, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("task: %w", err)
	}
	defer f.Close()
	name := strings.TrimSuffix(baseName(path), ".jsonl")
	name = strings.TrimSuffix(name, ".json")
	return Parse(f, path, name, format)
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

// LineError is a bad line of a task file.
type LineError struct {
	Source string
	Line   int
	Msg    string
}

func (e *LineError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.Source, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.Source, e.Line, e.Msg)
}

// Parse reads JSON Lines from r: one JSON object per line (blank lines are
// skipped). format nil detects the format from the first object; every
// example must then be of that format. Errors name source and line, on one line.
func Parse(r io.Reader, source, name string, format *Format) (*Task, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLineBytes)
	t := &Task{Name: name, Source: source, Delimiter: " "}
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		lerr := func(format string, args ...any) error {
			return &LineError{Source: source, Line: line, Msg: oneLine(fmt.Sprintf(format, args...))}
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(b, &obj); err != nil {
			return nil, lerr("not a JSON object: %v", err)
		}
		if format == nil {
			for _, f := range Formats {
				if f.detect(obj) {
					format = f
					break
				}
			}
			if format == nil {
				return nil, lerr("unknown task format (fields %s); give --task-format (%s, or context=FIELD,choices=FIELD,gold=FIELD)", keys(obj), formatNames())
			}
		}
		ex, err := format.convert(obj)
		if err != nil {
			return nil, lerr("%s format: %v", format.Name, err)
		}
		if len(ex.Choices) == 0 {
			return nil, lerr("no choices")
		}
		if len(ex.Choices) > MaxChoices {
			return nil, lerr("%d choices, more than %d", len(ex.Choices), MaxChoices)
		}
		if ex.Gold < 0 || ex.Gold >= len(ex.Choices) {
			return nil, lerr("gold %d is out of range for %d choices", ex.Gold, len(ex.Choices))
		}
		for i, c := range ex.Choices {
			if c == "" {
				return nil, lerr("choice %d is empty", i)
			}
		}
		if strings.TrimRightFunc(ex.Context, unicode.IsSpace) == "" {
			return nil, lerr("the context is empty")
		}
		ex.Line = line
		t.Examples = append(t.Examples, ex)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &LineError{Source: source, Line: line + 1, Msg: fmt.Sprintf("line longer than %d bytes", MaxLineBytes)}
		}
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if len(t.Examples) == 0 {
		return nil, &LineError{Source: source, Msg: "no examples"}
	}
	t.Format = format.Name
	return t, nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func keys(obj map[string]json.RawMessage) string {
	var ks []string
	for k := range obj {
		ks = append(ks, strconv.Quote(k))
	}
	if len(ks) > 8 {
		ks = append(ks[:8], "…")
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

// field decodes obj[name] into v; a missing field is an error naming it.
func field(obj map[string]json.RawMessage, name string, v any) error {
	raw, ok := obj[name]
	if !ok {
		return fmt.Errorf("missing field %q", name)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("field %q: %v", name, err)
	}
	return nil
}

// index reads a gold/label field: an integer, or a string holding one.
func index(obj map[string]json.RawMessage, name string) (int, error) {
	raw, ok := obj[name]
	if !ok {
		return 0, fmt.Errorf("missing field %q", name)
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		i, err := strconv.Atoi(n.String())
		if err != nil {
			return 0, fmt.Errorf("field %q: %s is not an integer", name, n)
		}
		return i, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if i, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
			return i, nil
		}
		return 0, fmt.Errorf("field %q: %q is not an integer", name, s)
	}
	return 0, fmt.Errorf("field %q: want an integer, got %s", name, abbrev(raw))
}

func abbrev(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

func mapped(o map[string]json.RawMessage, ctx, choices, gold string) (Example, error) {
	var ex Example
	if err := field(o, ctx, &ex.Context); err != nil {
		return ex, err
	}
	if err := field(o, choices, &ex.Choices); err != nil {
		return ex, err
	}
	g, err := index(o, gold)
	ex.Gold = g
	return ex, err
}

// hellaswag follows the harness's hellaswag task: the query is
// preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize()) when
// those fields are there (else ctx), the choices are the preprocessed endings.
func hellaswag(o map[string]json.RawMessage) (Example, error) {
	var ex Example
	var label, a, b string
	if field(o, "activity_label", &label) == nil && field(o, "ctx_a", &a) == nil && field(o, "ctx_b", &b) == nil {
		ex.Context = hellaswagPreprocess(label + ": " + a + " " + capitalize(b))
	} else if err := field(o, "ctx", &ex.Context); err != nil {
		return ex, err
	} else {
		ex.Context = hellaswagPreprocess(ex.Context)
	}
	if err := field(o, "endings", &ex.Choices); err != nil {
		return ex, err
	}
	for i := range ex.Choices {
		ex.Choices[i] = hellaswagPreprocess(ex.Choices[i])
	}
	g, err := index(o, "label")
	ex.Gold = g
	return ex, err
}

var bracketed = regexp.MustCompile(`\[.*?\]`)

// hellaswagPreprocess is the harness's hellaswag preprocess: strip, " [title]"
// becomes ". ", bracketed text goes, double spaces become one.
func hellaswagPreprocess(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, " [title]", ". ")
	s = bracketed.ReplaceAllString(s, "")
	return strings.ReplaceAll(s, "  ", " ")
}

// capitalize is Python's str.capitalize: the first character upper case, the
// rest lower case.
func capitalize(s string) string {
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToTitle(r)) + strings.ToLower(s[n:])
}

// piqa follows the harness: "Question: {goal}\nAnswer:", choices sol1, sol2.
func piqa(o map[string]json.RawMessage) (Example, error) {
	var ex Example
	var goal, s1, s2 string
	for _, f := range []struct {
		name string
		v    *string
	}{{"goal", &goal}, {"sol1", &s1}, {"sol2", &s2}} {
		if err := field(o, f.name, f.v); err != nil {
			return ex, err
		}
	}
	ex.Context = "Question: " + goal + "\nAnswer:"
	ex.Choices = []string{s1, s2}
	g, err := index(o, "label")
	ex.Gold = g
	return ex, err
}

// lettered reads ARC and OpenBookQA: choices {text, label}, answerKey one of
// the labels. ARC's context is "Question: {question}\nAnswer:", OpenBookQA's
// the question stem as is.
func lettered(o map[string]json.RawMessage, question string, arcPrompt bool) (Example, error) {
	var ex Example
	var q string
	if err := field(o, question, &q); err != nil {
		return ex, err
	}
	var ch struct {
		Text  []string `json:"text"`
		Label []string `json:"label"`
	}
	if err := field(o, "choices", &ch); err != nil {
		return ex, err
	}
	if len(ch.Text) != len(ch.Label) {
		return ex, fmt.Errorf("%d choices.text but %d choices.label", len(ch.Text), len(ch.Label))
	}
	var key string
	if err := field(o, "answerKey", &key); err != nil {
		return ex, err
	}
	ex.Gold = -1
	for i, l := range ch.Label {
		if l == key {
			ex.Gold = i
		}
	}
	if ex.Gold < 0 && len(ch.Text) > 0 {
		return ex, fmt.Errorf("answerKey %q is none of the choice labels %q", key, ch.Label)
	}
	ex.Context = q
	if arcPrompt {
		ex.Context = "Question: " + q + "\nAnswer:"
	}
	ex.Choices = ch.Text
	return ex, nil
}

// boolq follows the harness: "{passage}\nQuestion: {question}?\nAnswer:",
// choices no/yes; the answer is a boolean (google/boolq) or a 0/1 label
// (super_glue).
func boolq(o map[string]json.RawMessage) (Example, error) {
	var ex Example
	var p, q string
	if err := field(o, "passage", &p); err != nil {
		return ex, err
	}
	if err := field(o, "question", &q); err != nil {
		return ex, err
	}
	ex.Context = p + "\nQuestion: " + q + "?\nAnswer:"
	ex.Choices = []string{"no", "yes"}
	if _, ok := o["answer"]; ok {
		var b bool
		if err := field(o, "answer", &b); err != nil {
			return ex, err
		}
		if b {
			ex.Gold = 1
		}
		return ex, nil
	}
	g, err := index(o, "label")
	ex.Gold = g
	return ex, err
}
