package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/onnxslm/onnxslm/prune"
)

// stdio is what a command may touch of the outside world. Tests replace it.
type stdio struct {
	Stdout io.Writer // results only: tables, JSON
	Stderr io.Writer // messages for people: progress, summaries, errors
	// Terminal reports whether Stderr is an interactive terminal (progress bars).
	Terminal bool
}

func newStdio() *stdio {
	terminal := false
	if fi, err := os.Stderr.Stat(); err == nil {
		terminal = fi.Mode()&os.ModeCharDevice != 0
	}
	return &stdio{Stdout: os.Stdout, Stderr: os.Stderr, Terminal: terminal}
}

// command is one subcommand. Each lives in its own file and registers itself.
type command struct {
	Name    string
	Args    string // e.g. "MODEL.onnx"
	Summary string
	// Flags declares the command's flags on fs and returns the function that runs
	// the command with the positional arguments once flags are parsed.
	Flags func(fs *pflag.FlagSet) func(ctx context.Context, io *stdio, args []string) error
}

var commands = map[string]*command{}

func register(c *command) {
	if _, dup := commands[c.Name]; dup {
		panic("onnxslm: command registered twice: " + c.Name)
	}
	commands[c.Name] = c
}

// usageError marks a mistake in how the command was called (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// optionUsage turns a *prune.OptionError into a usage error that names
// options by their flags (flagOf maps the options' field names); other errors
// are returned as they are.
func optionUsage(err error, flagOf map[string]string) error {
	var oe *prune.OptionError
	if !errors.As(err, &oe) {
		return err
	}
	return &usageError{msg: oe.Format(func(field string) string {
		if f, ok := flagOf[field]; ok {
			return f
		}
		return field
	})}
}

// runError is what a command returns when the prune library fails on model:
// a usage error where err is a *prune.OptionError (its options named by
// their flags, flagOf), else err prefixed with the model.
func runError(err error, flagOf map[string]string, model string) error {
	if ue := optionUsage(err, flagOf); ue != err {
		return ue
	}
	return fmt.Errorf("%s: %w", model, err)
}

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// defaultCommand runs when the first argument is not a command name:
// `onnxslm IN.onnx OUT.onnx` is `onnxslm prune IN.onnx OUT.onnx`.
const defaultCommand = "prune"

// Main runs onnxslm with args (without the program name) and returns the exit
// status: 0 success, 1 failure, 2 usage error. It never calls os.Exit.
func Main(ctx context.Context, args []string, io *stdio) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 && args[0] == "help" {
			if c, ok := commands[args[1]]; ok {
				printCommandHelp(io.Stdout, c)
				return 0
			}
		}
		printHelp(io.Stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "version" {
		fmt.Fprintf(io.Stdout, "onnxslm %s\n", Version)
		return 0
	}
	name := args[0]
	c, ok := commands[name]
	if ok {
		args = args[1:]
	} else {
		c, ok = commands[defaultCommand]
		if !ok || strings.HasPrefix(name, "-") && !looksLikeFlagOf(name) {
			fmt.Fprintf(io.Stderr, "onnxslm: unknown command %q (see onnxslm --help)\n", name)
			return 2
		}
	}
	fs := pflag.NewFlagSet("onnxslm "+c.Name, pflag.ContinueOnError)
	fs.SetOutput(io.Stderr)
	fs.SortFlags = false
	run := c.Flags(fs)
	fs.Usage = func() {} // help and errors are printed below, once
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			printCommandHelp(io.Stdout, c)
			return 0
		}
		fmt.Fprintf(io.Stderr, "onnxslm %s: %v\n", c.Name, err)
		return 2
	}
	if err := run(ctx, io, fs.Args()); err != nil {
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(io.Stderr, "onnxslm %s: %v\n(see onnxslm %s --help)\n", c.Name, err, c.Name)
			return 2
		}
		fmt.Fprintf(io.Stderr, "onnxslm %s: %v\n", c.Name, err)
		return 1
	}
	return 0
}

// looksLikeFlagOf reports whether a leading flag belongs to the default command,
// as in `onnxslm --threshold 0.9 in.onnx out.onnx`.
func looksLikeFlagOf(arg string) bool {
	c, ok := commands[defaultCommand]
	if !ok {
		return false
	}
	fs := pflag.NewFlagSet("probe", pflag.ContinueOnError)
	c.Flags(fs)
	name := strings.TrimLeft(arg, "-")
	if i := strings.IndexByte(name, '='); i >= 0 {
		name = name[:i]
	}
	if strings.HasPrefix(arg, "--") {
		return fs.Lookup(name) != nil
	}
	return len(name) == 1 && fs.ShorthandLookup(name) != nil
}

func sortedCommands() []*command {
	cs := make([]*command, 0, len(commands))
	for _, c := range commands {
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
	return cs
}

func printHelp(w io.Writer) {
	fmt.Fprintf(w, `onnxslm %s: depth-wise pruning of decoder-only LLMs in ONNX by Sliding Layer Merging.

Usage:
  onnxslm IN.onnx OUT.onnx [flags]     prune (the same as: onnxslm prune ...)
  onnxslm COMMAND [flags] ARGS...

Commands:
`, Version)
	for _, c := range sortedCommands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.Name, c.Summary)
	}
	fmt.Fprintf(w, `
A MODEL may be a path or builtin:NAME, a small trained model shipped in the binary
(%s).
Run 'onnxslm COMMAND --help' for a command's flags.
`, strings.Join(builtinNames(), ", "))
}

func printCommandHelp(w io.Writer, c *command) {
	fmt.Fprintf(w, "Usage: onnxslm %s [flags] %s\n\n%s\n\nFlags:\n", c.Name, c.Args, c.Summary)
	fs := pflag.NewFlagSet(c.Name, pflag.ContinueOnError)
	fs.SortFlags = false
	c.Flags(fs)
	fs.SetOutput(w)
	fs.PrintDefaults()
}
