// Package tap is a small stand-in, written for stockade's conformance test, for the TAP
// producer that opencontainers/runtime-tools' validation programs import as
// github.com/mndrix/tap-go: Debian packages no copy of that library, so conformance.sh puts
// this file at its import path. It provides the methods the validation programs and
// runtimetest call, and prints TAP version 13: "ok N - text", "not ok N - text",
// "ok N # SKIP text", "not ok N # TODO text", "# diagnostic" lines, and YAML blocks written
// as indented JSON between "---" and "...".
package tap

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// T writes one TAP stream.
type T struct {
	// Writer receives the stream (standard output unless changed).
	Writer io.Writer
	// count is shared by the copies Todo makes, so their tests keep the numbering.
	count *int
	todo  bool
}

// New starts a stream on standard output.
func New() *T {
	return &T{Writer: os.Stdout, count: new(int)}
}

func (t *T) out(format string, a ...interface{}) {
	fmt.Fprintf(t.Writer, format, a...)
}

// Header prints the version line and, for a positive count, the plan.
func (t *T) Header(testCount int) {
	t.out("TAP version 13\n")
	if testCount > 0 {
		t.out("1..%d\n", testCount)
	}
}

// Ok reports one test.
func (t *T) Ok(test bool, description string) {
	*t.count++
	status := "ok"
	if !test {
		status = "not ok"
	}
	if t.todo {
		t.out("%s %d # TODO %s\n", status, *t.count, description)
	} else {
		t.out("%s %d - %s\n", status, *t.count, description)
	}
}

// Pass reports a passing test.
func (t *T) Pass(description string) { t.Ok(true, description) }

// Fail reports a failing test.
func (t *T) Fail(description string) { t.Ok(false, description) }

// Skip reports count skipped tests.
func (t *T) Skip(count int, description string) {
	for i := 0; i < count; i++ {
		*t.count++
		t.out("ok %d # SKIP %s\n", *t.count, description)
	}
}

// Todo returns a writer on the same stream whose tests are marked TODO.
func (t *T) Todo() *T {
	c := *t
	c.todo = true
	return &c
}

// Count is the number of tests reported so far.
func (t *T) Count() int { return *t.count }

// AutoPlan prints the plan for the tests reported so far.
func (t *T) AutoPlan() { t.out("1..%d\n", *t.count) }

// Diagnostic prints a comment, one "# " line per line of message.
func (t *T) Diagnostic(message string) {
	for _, line := range strings.Split(strings.TrimRight(message, "\n"), "\n") {
		t.out("# %s\n", line)
	}
}

// Diagnosticf is Diagnostic with fmt.Sprintf's formatting.
func (t *T) Diagnosticf(format string, a ...interface{}) {
	t.Diagnostic(fmt.Sprintf(format, a...))
}

// YAML prints a YAML block (JSON is YAML) about the test before it.
func (t *T) YAML(message interface{}) error {
	text, err := json.MarshalIndent(message, "  ", "  ")
	if err != nil {
		return err
	}
	t.out("  ---\n  %s\n  ...\n", text)
	return nil
}
