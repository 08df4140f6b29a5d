package graph

import (
	"fmt"
	"io"
	"time"
)

// Pass is one step of a rewrite pipeline, in the manner of the Go compiler's SSA
// pass table: the pipeline is data, so it can be checked, timed, dumped and
// validated pass by pass.
type Pass struct {
	Name string
	Fn   func(*Graph) error
	// Required passes run even when the configuration disables them.
	Required bool
}

// Constraint says that pass Before must run before pass After whenever both run.
type Constraint struct{ Before, After string }

// CheckOrder verifies that passes have unique names and satisfy the constraints.
func CheckOrder(passes []Pass, constraints []Constraint) error {
	pos := map[string]int{}
	for i, p := range passes {
		if _, dup := pos[p.Name]; dup {
			return fmt.Errorf("graph: pass %q listed twice", p.Name)
		}
		pos[p.Name] = i
	}
	for _, c := range constraints {
		i, ok1 := pos[c.Before]
		j, ok2 := pos[c.After]
		if !ok1 || !ok2 {
			return fmt.Errorf("graph: constraint %s before %s names an unknown pass", c.Before, c.After)
		}
		if i >= j {
			return fmt.Errorf("graph: pass %s must run before %s", c.Before, c.After)
		}
	}
	return nil
}

// PassConfig controls Run.
type PassConfig struct {
	// Check runs Validate after every pass and stops at the first pass that leaves
	// an invalid graph (tests turn it on).
	Check bool
	// DumpAfter names a pass after which the graph is dumped to DumpTo ("*": after
	// every pass, "" never).
	DumpAfter string
	DumpTo    io.Writer
	// Disabled names passes to skip (required passes still run).
	Disabled map[string]bool
	// Timings, when non-nil, receives the time each pass took.
	Timings *[]PassTiming
}

// PassTiming is the duration of one pass.
type PassTiming struct {
	Name string
	Took time.Duration
}

// PassError wraps the error of a pass, or the validation failure it caused.
type PassError struct {
	Pass string
	// Invalid is true when the pass itself succeeded but left an invalid graph.
	Invalid bool
	Err     error
}

func (e *PassError) Error() string {
	if e.Invalid {
		return fmt.Sprintf("pass %s left an invalid graph: %v", e.Pass, e.Err)
	}
	return fmt.Sprintf("pass %s: %v", e.Pass, e.Err)
}

func (e *PassError) Unwrap() error { return e.Err }

// Run runs the passes over g in order.
func Run(g *Graph, passes []Pass, cfg PassConfig) error {
	for _, p := range passes {
		if cfg.Disabled[p.Name] && !p.Required {
			continue
		}
		start := time.Now()
		if err := p.Fn(g); err != nil {
			return &PassError{Pass: p.Name, Err: err}
		}
		if cfg.Timings != nil {
			*cfg.Timings = append(*cfg.Timings, PassTiming{p.Name, time.Since(start)})
		}
		if cfg.DumpTo != nil && (cfg.DumpAfter == "*" || cfg.DumpAfter == p.Name) {
			fmt.Fprintf(cfg.DumpTo, "# after pass %s\n", p.Name)
			if err := g.Dump(cfg.DumpTo); err != nil {
				return fmt.Errorf("dump after pass %s: %w", p.Name, err)
			}
		}
		if cfg.Check {
			if err := g.Validate(); err != nil {
				return &PassError{Pass: p.Name, Invalid: true, Err: err}
			}
		}
	}
	return nil
}
