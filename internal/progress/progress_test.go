package progress

import (
	"bytes"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a fake time source advanced by the tests.
type clock struct{ t time.Time }

func (c *clock) now() time.Time                 { return c.t }
func (c *clock) advance(d time.Duration)        { c.t = c.t.Add(d) }
func newClock() *clock                          { return &clock{t: time.Unix(1_700_000_000, 0)} }
func withClock(r *Reporter, c *clock) *Reporter { r.now = c.now; return r }

// screen plays the bytes written to a terminal onto one visible line per
// newline, honouring \r (cursor to column 0, later text overwrites).
func screen(out string) []string {
	var lines []string
	var cur []rune
	col := 0
	for _, r := range out {
		switch r {
		case '\r':
			col = 0
		case '\n':
			lines = append(lines, strings.TrimRight(string(cur), " "))
			cur, col = nil, 0
		default:
			if col < len(cur) {
				cur[col] = r
			} else {
				cur = append(cur, r)
			}
			col++
		}
	}
	return append(lines, strings.TrimRight(string(cur), " "))
}

func TestTerminalRedrawsInPlace(t *testing.T) {
	var buf bytes.Buffer
	c := newClock()
	r := withClock(New(&buf, true), c)
	task := r.Start("calibration", 4)
	c.advance(time.Second)
	task.Add(1)
	if got, want := screen(buf.String()), []string{"calibration 1/4 25% 1.0s, ~3.0s left"}; !slices.Equal(got, want) {
		t.Fatalf("after Add(1): got screen %q, want %q", got, want)
	}
	c.advance(time.Second)
	task.Add(3)
	c.advance(500 * time.Millisecond)
	task.Done()
	got := screen(buf.String())
	want := []string{"calibration: 4/4 in 2.5s", ""}
	if !slices.Equal(got, want) {
		t.Fatalf("after Done: got screen %q, want %q", got, want)
	}
	if strings.Count(buf.String(), "\n") != 1 {
		t.Errorf("got %d newlines in %q, want 1 (only the final line)", strings.Count(buf.String(), "\n"), buf.String())
	}
}

func TestThrottle(t *testing.T) {
	var buf bytes.Buffer
	c := newClock()
	r := withClock(New(&buf, true), c)
	task := r.Start("candidates", 1000)
	draws := strings.Count(buf.String(), "\r")
	// 1000 updates over one second: at most ~10 redraws, and at least a few.
	for range 1000 {
		c.advance(time.Millisecond)
		task.Add(1)
	}
	redraws := strings.Count(buf.String(), "\r") - draws
	if redraws > 2*11 || redraws < 2*5 {
		t.Errorf("got %d carriage returns for 1000 updates in 1s, want about 10 redraws (each at most 2)", redraws)
	}
}

func TestNotTerminal(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		want    string
		wantNil bool
	}{
		{name: "quiet", opts: Options{Enabled: true}, want: ""},
		{name: "verbose", opts: Options{Enabled: true, Verbose: true}, want: "load: done in 1.0s\npass: 3/3 in 2.0s\n"},
		{name: "disabled", opts: Options{Enabled: false, Terminal: true, Verbose: true}, want: "", wantNil: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			c := newClock()
			r := NewWith(&buf, tt.opts)
			if (r == nil) != tt.wantNil {
				t.Fatalf("got nil Reporter %v, want %v", r == nil, tt.wantNil)
			}
			if r != nil {
				withClock(r, c)
			}
			load := r.Start("load", 0)
			c.advance(time.Second)
			load.Done()
			pass := r.Start("pass", 3)
			for range 3 {
				c.advance(700 * time.Millisecond)
				pass.Add(1)
			}
			c.advance(-100 * time.Millisecond)
			pass.Done()
			pass.Done() // second Done is a no-op
			if got := buf.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestHeartbeat: a verbose log (not a terminal) gets the status line once a
// heartbeat while a long step runs, not on every unit of work.
func TestHeartbeat(t *testing.T) {
	var buf bytes.Buffer
	c := newClock()
	r := withClock(NewWith(&buf, Options{Enabled: true, Verbose: true, Heartbeat: time.Minute}), c)
	task := r.Start("candidates", 0)
	for range 10 {
		c.advance(25 * time.Second)
		task.Add(1)
	}
	task.Done()
	want := "candidates 4 1m40s\ncandidates 7 2m55s\ncandidates 10 4m10s\ncandidates: 10 in 4m10s\n"
	if got := buf.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestNote(t *testing.T) {
	var buf bytes.Buffer
	c := newClock()
	r := withClock(NewWith(&buf, Options{Enabled: true, Verbose: true, Heartbeat: time.Minute}), c)
	task := r.Start("candidates", 0)
	for i := range 6 {
		c.advance(25 * time.Second)
		task.Add(1)
		if i == 1 {
			task.Note("threshold 0.950000: 30 layers, target 24")
		}
	}
	task.Done()
	// The note stays on the status line (the heartbeat's, here) and is left
	// off the finished step's summary.
	want := "candidates 4 1m40s (threshold 0.950000: 30 layers, target 24)\n" +
		"candidates: 6 in 2m30s\n"
	if got := buf.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	task.Note("after Done") // ignored, like Add
	if got := buf.String(); got != want {
		t.Errorf("a note after Done printed: %q", got)
	}
}

func TestNested(t *testing.T) {
	var buf bytes.Buffer
	c := newClock()
	r := withClock(New(&buf, true), c)
	outer := r.Start("candidates", 2)
	inner := r.Start("pass", 0)
	c.advance(200 * time.Millisecond)
	inner.Add(5)
	if got, want := screen(buf.String()), []string{"candidates 0/2 0% 200ms · pass 5 200ms"}; !slices.Equal(got, want) {
		t.Fatalf("got screen %q, want %q", got, want)
	}
	inner.Done() // nested: leaves no line of its own
	outer.Add(1)
	if got, want := screen(buf.String()), []string{"candidates 0/2 0% 200ms"}; !slices.Equal(got, want) {
		t.Fatalf("after inner Done: got screen %q, want %q", got, want)
	}
	r.Logf("warning: %s", "something")
	if got, want := screen(buf.String()), []string{"warning: something", "candidates 1/2 50% 200ms, ~200ms left"}; !slices.Equal(got, want) {
		t.Fatalf("after Logf: got screen %q, want %q", got, want)
	}
	c.advance(time.Second)
	outer.Add(1)
	outer.Done()
	if got, want := screen(buf.String()), []string{"warning: something", "candidates: 2/2 in 1.2s", ""}; !slices.Equal(got, want) {
		t.Fatalf("after outer Done: got screen %q, want %q", got, want)
	}
}

func TestNilIsNoOp(t *testing.T) {
	var r *Reporter
	task := r.Start("x", 10)
	if task != nil {
		t.Fatalf("got Task %v from a nil Reporter, want nil", task)
	}
	task.Add(3)
	task.Done()
	r.Logf("ignored")
	if NewWith(nil, Options{Enabled: true}) != nil {
		t.Errorf("got a Reporter for a nil writer, want nil")
	}
}

func TestConcurrentNoLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	var buf safeBuffer
	r := New(&buf, true)
	task := r.Start("work", 8*500)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				task.Add(1)
			}
		}()
	}
	wg.Wait()
	task.Done()
	if !strings.Contains(buf.String(), "work: 4000/4000 in ") {
		t.Errorf("got %q, want a final line with 4000/4000", buf.String())
	}
	// The package starts no goroutines of its own.
	for range 50 {
		if runtime.NumGoroutine() <= before {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("got %d goroutines after the work, want at most %d", runtime.NumGoroutine(), before)
}

func TestDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0ms"},
		{850 * time.Millisecond, "850ms"},
		{4200 * time.Millisecond, "4.2s"},
		{65 * time.Second, "1m05s"},
		{2*time.Hour + 3*time.Minute + 10*time.Second, "2h03m"},
	}
	for _, tt := range tests {
		if got := Duration(tt.d); got != tt.want {
			t.Errorf("Duration(%v): got %q, want %q", tt.d, got, tt.want)
		}
	}
}

// safeBuffer is a bytes.Buffer guarded by a mutex. The Reporter serializes its
// own writes; this guards the final read against the race detector.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
