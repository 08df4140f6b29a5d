// Package progress reports the progress of long steps (loading, calibration
// passes, candidate models) on a stream meant for people, usually stderr.
//
// On a terminal the active steps are redrawn in place on one line (with \r) at
// most about ten times a second, with counts, elapsed time and an estimate of
// the time left. On anything else it prints nothing, or, in verbose mode, one
// plain line per finished step and, during a long step, the status line once a
// minute (a log of a long run shows it is moving). A nil *Reporter and a nil *Task are valid and
// do nothing, so callers never need to check.
//
// The package starts no goroutines: the line is redrawn only from calls to
// Start, Add, Done and Logf.
package progress

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// DefaultInterval is the shortest time between two redraws of the line.
const DefaultInterval = 100 * time.Millisecond

// Options configures a Reporter made by NewWith.
type Options struct {
	// Enabled turns reporting on. NewWith returns nil (a no-op Reporter) when
	// it is false, which is what the CLI's -q asks for.
	Enabled bool
	// Terminal says the writer is an interactive terminal: redraw in place.
	Terminal bool
	// Verbose, when the writer is not a terminal, prints one plain line per
	// finished step. Without it a non-terminal gets nothing.
	Verbose bool
	// Interval is the shortest time between redraws; 0 means DefaultInterval.
	Interval time.Duration
	// Heartbeat, in verbose mode on a non-terminal, is the shortest time
	// between two plain status lines printed while steps run; 0 means
	// DefaultHeartbeat.
	Heartbeat time.Duration
}

// DefaultHeartbeat is the shortest time between two status lines on a
// verbose non-terminal.
const DefaultHeartbeat = time.Minute

// Reporter draws the progress of the steps started with Start. It is safe for
// concurrent use.
type Reporter struct {
	mu       sync.Mutex
	w        io.Writer
	terminal bool
	verbose  bool
	interval time.Duration
	now      func() time.Time // replaced in tests

	active    []*Task   // unfinished tasks, in start order
	lastDraw  time.Time // when the line was last drawn
	heartbeat time.Duration
	lastBeat  time.Time // when the last status line was printed (verbose, not a terminal)
	width     int       // runes on the line now (0: the line is clear)
}

// New returns a Reporter writing to w. terminal says whether w is an
// interactive terminal; when it is not, the Reporter prints nothing.
func New(w io.Writer, terminal bool) *Reporter {
	return NewWith(w, Options{Enabled: true, Terminal: terminal})
}

// NewWith returns a Reporter configured by o, or nil when o.Enabled is false
// or w is nil.
func NewWith(w io.Writer, o Options) *Reporter {
	if !o.Enabled || w == nil {
		return nil
	}
	iv := o.Interval
	if iv <= 0 {
		iv = DefaultInterval
	}
	hb := o.Heartbeat
	if hb <= 0 {
		hb = DefaultHeartbeat
	}
	return &Reporter{w: w, terminal: o.Terminal, verbose: o.Verbose, interval: iv, heartbeat: hb, now: time.Now}
}

// Task is one step being reported. Its methods are safe for concurrent use.
type Task struct {
	r        *Reporter
	label    string
	total    int // <= 0: unknown
	done     int
	start    time.Time
	finished bool
	note     string // where the step stands, in words; shown after its counts
}

// Start begins a step called label with total units of work (0 or less when
// the total is unknown) and returns its Task. On a nil Reporter it returns a
// nil Task, whose methods do nothing.
func (r *Reporter) Start(label string, total int) *Task {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t := &Task{r: r, label: label, total: total, start: r.now()}
	r.active = append(r.active, t)
	r.redraw(true)
	return t
}

// Add records n more units of work done. The line is redrawn only when the
// last redraw is older than the Reporter's interval.
func (t *Task) Add(n int) {
	t.update(func(r *Reporter) {
		t.done += n
		r.redraw(false)
		r.beat()
	})
}

// Note sets a short account of where the step stands ("threshold 0.95: 30
// layers"), shown in its status after the counts until the next Note. It
// redraws like Add.
func (t *Task) Note(s string) {
	t.update(func(r *Reporter) {
		t.note = s
		r.redraw(false)
	})
}

// update runs f with t's Reporter locked, unless t is nil or already done.
func (t *Task) update(f func(r *Reporter)) {
	if t == nil {
		return
	}
	r := t.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if t.finished {
		return
	}
	f(r)
}

// Done marks the step finished. On a terminal, a step that finishes while no
// other is active leaves a final line ("label: 16/16 in 2.3s"); a nested step
// that finishes inside another just disappears from the line. In verbose mode
// on a non-terminal every finished step prints that line. Calls after the
// first do nothing.
func (t *Task) Done() {
	t.update(func(r *Reporter) {
		t.finished = true
		for i, a := range r.active {
			if a == t {
				r.active = append(r.active[:i], r.active[i+1:]...)
				break
			}
		}
		now := r.now()
		final := t.summary(now)
		switch {
		case r.terminal && len(r.active) == 0:
			r.clear()
			fmt.Fprintln(r.w, final)
			r.lastDraw = now
		case r.terminal:
			r.redraw(true)
		case r.verbose:
			fmt.Fprintln(r.w, final)
		}
	})
}

// Logf prints a message for people without garbling the progress line: on a
// terminal the line is cleared, the message printed on its own line and the
// line redrawn below it. A newline is added when the message lacks one.
func (r *Reporter) Logf(format string, args ...any) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	if !strings.HasSuffix(msg, "\n") {
		msg += "\n"
	}
	if r.terminal {
		r.clear()
	}
	io.WriteString(r.w, msg)
	if r.terminal {
		r.redraw(true)
	}
}

// redraw draws the line of active tasks on a terminal, unless force is false
// and the last redraw was less than an interval ago. r.mu is held.
func (r *Reporter) redraw(force bool) {
	if !r.terminal {
		return
	}
	now := r.now()
	if !force && now.Sub(r.lastDraw) < r.interval {
		return
	}
	r.lastDraw = now
	if len(r.active) == 0 {
		r.clear()
		return
	}
	line := r.statusLine(now)
	n := utf8.RuneCountInString(line)
	pad := ""
	if n < r.width {
		pad = strings.Repeat(" ", r.width-n)
	}
	fmt.Fprintf(r.w, "\r%s%s", line, pad)
	if pad != "" {
		// Put the cursor back at the end of the text.
		fmt.Fprintf(r.w, "\r%s", line)
	}
	r.width = n
}

// beat prints the status of the active steps as a plain line, in verbose mode
// on a non-terminal, when the last one (or the first work reported) is a
// heartbeat ago. r.mu is held.
func (r *Reporter) beat() {
	if r.terminal || !r.verbose || len(r.active) == 0 {
		return
	}
	now := r.now()
	if r.lastBeat.IsZero() {
		r.lastBeat = now
		return
	}
	if now.Sub(r.lastBeat) < r.heartbeat {
		return
	}
	r.lastBeat = now
	fmt.Fprintln(r.w, r.statusLine(now))
}

// statusLine is the active steps' statuses, in start order. r.mu is held.
func (r *Reporter) statusLine(now time.Time) string {
	parts := make([]string, len(r.active))
	for i, t := range r.active {
		parts[i] = t.status(now)
	}
	return strings.Join(parts, " · ")
}

// clear blanks the line when something is drawn on it. r.mu is held.
func (r *Reporter) clear() {
	if r.width == 0 {
		return
	}
	fmt.Fprintf(r.w, "\r%s\r", strings.Repeat(" ", r.width))
	r.width = 0
}

// status is the task's part of the progress line:
// "label 3/10 30% 1.2s, ~2.8s left". t.r.mu is held.
func (t *Task) status(now time.Time) string {
	elapsed := now.Sub(t.start)
	var b strings.Builder
	b.WriteString(t.label)
	switch {
	case t.total > 0:
		fmt.Fprintf(&b, " %d/%d %d%%", t.done, t.total, percent(t.done, t.total))
	case t.done > 0:
		fmt.Fprintf(&b, " %d", t.done)
	}
	b.WriteString(" ")
	b.WriteString(Duration(elapsed))
	if left, ok := remaining(elapsed, t.done, t.total); ok {
		b.WriteString(", ~")
		b.WriteString(Duration(left))
		b.WriteString(" left")
	}
	if t.note != "" {
		b.WriteString(" (")
		b.WriteString(t.note)
		b.WriteString(")")
	}
	return b.String()
}

// summary is the line for a finished task: "label: 10/10 in 1.2s".
func (t *Task) summary(now time.Time) string {
	elapsed := now.Sub(t.start)
	switch {
	case t.total > 0:
		return fmt.Sprintf("%s: %d/%d in %s", t.label, t.done, t.total, Duration(elapsed))
	case t.done > 0:
		return fmt.Sprintf("%s: %d in %s", t.label, t.done, Duration(elapsed))
	default:
		return fmt.Sprintf("%s: done in %s", t.label, Duration(elapsed))
	}
}

func percent(done, total int) int {
	p := done * 100 / total
	return min(max(p, 0), 100)
}

// remaining estimates the time left by assuming the rate so far continues.
func remaining(elapsed time.Duration, done, total int) (time.Duration, bool) {
	if total <= 0 || done <= 0 || elapsed <= 0 {
		return 0, false
	}
	if done >= total {
		return 0, true
	}
	return time.Duration(float64(elapsed) * float64(total-done) / float64(done)), true
}

// Duration formats d for people: "850ms", "4.2s", "1m05s", "2h03m".
func Duration(d time.Duration) string {
	switch {
	case d < 0:
		d = 0
		fallthrough
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		s := int(d.Round(time.Second) / time.Second)
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	default:
		m := int(d.Round(time.Minute) / time.Minute)
		return fmt.Sprintf("%dh%02dm", m/60, m%60)
	}
}
