package main

import (
	"github.com/onnxslm/onnxslm/internal/progress"
	"github.com/onnxslm/onnxslm/onnx"
)

// verboseUsage is the help of the -v flag of the commands that report progress.
const verboseUsage = "when stderr is not a terminal (a log, CI), print a line as each step finishes"

// newReporter returns the progress reporter of a command: a line redrawn in
// place on a terminal; with verbose, one line per finished step elsewhere;
// nothing with quiet.
func newReporter(io *stdio, quiet, verbose bool) *progress.Reporter {
	return progress.NewWith(io.Stderr, progress.Options{Enabled: !quiet, Terminal: io.Terminal, Verbose: verbose})
}

// loadReported loads a MODEL argument (loadModelArg) as a step of rep.
func loadReported(rep *progress.Reporter, arg string) (*onnx.Model, error) {
	load := rep.Start("load "+arg, 0)
	defer load.Done()
	return loadModelArg(arg)
}

// progressAdapter lets package prune report through internal/progress.
type progressAdapter struct {
	r    *progress.Reporter
	task *progress.Task
}

func (p *progressAdapter) Start(step string, total int) { p.task = p.r.Start(step, total) }
func (p *progressAdapter) Tick() {
	if p.task != nil {
		p.task.Add(1)
	}
}
func (p *progressAdapter) Note(s string) {
	if p.task != nil {
		p.task.Note(s)
	}
}
func (p *progressAdapter) Done() {
	if p.task != nil {
		p.task.Done()
		p.task = nil
	}
}
