package nodeexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/cke/nodeexec/sshdtest"
)

func TestRun(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t)
	c := dialT(t, srv, config(srv))

	tests := []struct {
		name       string
		cmd        string
		stdin      string
		want       string
		wantStatus int // 0: success expected
		wantStderr string
	}{
		{name: "stdout", cmd: "echo hello", want: "hello\n"},
		{name: "stdin", cmd: "tr a-z A-Z", stdin: "abc", want: "ABC"},
		{name: "no stdin is empty", cmd: "wc -c", want: "0\n"},
		{name: "unread stdin", cmd: "true", stdin: strings.Repeat("x", 1<<20)},
		{name: "exit status", cmd: "echo out; echo oops >&2; exit 3", want: "out\n", wantStatus: 3, wantStderr: "oops\n"},
		{name: "command not found", cmd: "no-such-command-here", wantStatus: 127, wantStderr: "no-such-command-here"},
		{name: "killed", cmd: "kill -KILL $$", wantStatus: 128 + 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdin *strings.Reader
			if tt.stdin != "" {
				stdin = strings.NewReader(tt.stdin)
			}
			var out []byte
			var err error
			if stdin != nil {
				out, err = c.Run(ctxT(t), tt.cmd, stdin)
			} else {
				out, err = c.Run(ctxT(t), tt.cmd, nil)
			}
			if string(out) != tt.want {
				t.Errorf("output %q, want %q", out, tt.want)
			}
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var exit *ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("error %v, want an ExitError", err)
			}
			if exit.Status != tt.wantStatus || exit.Cmd != tt.cmd || !strings.Contains(string(exit.Stderr), tt.wantStderr) ||
				strings.Contains(string(exit.Stderr), pgidMarker) {
				t.Errorf("ExitError %+v, want status %d, stderr with %q", exit, tt.wantStatus, tt.wantStderr)
			}
			want := fmt.Sprintf("nodeexec: %s: run %q: ", srv.Addr, tt.cmd)
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q does not start with %q", err, want)
			}
		})
	}
}

func TestRunBoundsOutput(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t)
	c := dialT(t, srv, config(srv))

	_, err := c.Run(ctxT(t), fmt.Sprintf("head -c %d /dev/zero", MaxOutput+1), nil)
	if !errors.Is(err, ErrOutputTooLarge) {
		t.Errorf("error %v, want ErrOutputTooLarge", err)
	}
	out, err := c.Run(ctxT(t), fmt.Sprintf("head -c %d /dev/zero", MaxOutput), nil)
	if err != nil || len(out) != MaxOutput {
		t.Errorf("MaxOutput bytes: %d bytes, %v", len(out), err)
	}

	// Only the end of a long stderr is kept: where the reason is.
	_, err = c.Run(ctxT(t), "head -c 100000 /dev/zero | tr '\\0' x >&2; echo THE-END >&2; exit 1", nil)
	var exit *ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("error %v, want an ExitError", err)
	}
	if len(exit.Stderr) != StderrTail || !bytes.HasSuffix(exit.Stderr, []byte("xxTHE-END\n")) {
		t.Errorf("stderr: %d bytes ending %q", len(exit.Stderr), exit.Stderr[max(0, len(exit.Stderr)-20):])
	}

	// The connection still works.
	if out, err := c.Run(ctxT(t), "echo ok", nil); err != nil || string(out) != "ok\n" {
		t.Errorf("afterwards: %q, %v", out, err)
	}
}

func TestRunCancel(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t)
	c := dialT(t, srv, config(srv))

	started := filepath.Join(t.TempDir(), "started")
	arg := uniqueSleep(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Run(ctx, fmt.Sprintf("touch %s; exec sleep %s", started, arg), nil)
		errc <- err
	}()
	eventually(t, "started", func() bool { _, err := os.Stat(started); return err == nil })
	eventually(t, "sleeping", func() bool { return running(arg) })
	cancel()
	// Run returns at once, long before the sleep would end.
	if err := waitErr(t, errc); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	// The command was killed on the node.
	eventually(t, "killed", func() bool { return !running(arg) })

	if out, err := c.Run(ctxT(t), "echo ok", nil); err != nil || string(out) != "ok\n" {
		t.Errorf("afterwards: %q, %v", out, err)
	}
}

func TestRunCommandTimeout(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t)
	cfg := config(srv)
	cfg.CommandTimeout = 500 * time.Millisecond
	c := dialT(t, srv, cfg)

	arg := uniqueSleep(t)
	_, err := c.Run(ctxT(t), "exec sleep "+arg, nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "command timeout 500ms") {
		t.Errorf("error %v, want a command timeout", err)
	}
	eventually(t, "killed", func() bool { return !running(arg) })
}

func TestRunConcurrent(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t)
	c := dialT(t, srv, config(srv))

	// More commands than sessions a connection may have open.
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			out, err := c.Run(ctxT(t), fmt.Sprintf("sleep 0.2; echo %d", i), nil)
			if err == nil && string(out) != fmt.Sprintf("%d\n", i) {
				err = fmt.Errorf("output %q", out)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("command %d: %v", i, err)
		}
	}
}

func TestRunConnectionLost(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t)
	c := dialT(t, srv, config(srv))

	// A command running when the node goes down: it may have done its
	// work, so the error says so and a Pool does not retry it.
	arg := uniqueSleep(t)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Run(ctxT(t), "exec sleep "+arg, nil)
		errc <- err
	}()
	eventually(t, "sleeping", func() bool { return running(arg) })
	srv.Stop()
	err := waitErr(t, errc)
	var notStarted *notStartedError
	if !errors.Is(err, ErrConnLost) || errors.As(err, &notStarted) {
		t.Errorf("error %v, want ErrConnLost of a started command", err)
	}

	// A command on the dead connection never started.
	_, err = c.Run(ctxT(t), "true", nil)
	if !errors.Is(err, ErrConnLost) || !errors.As(err, &notStarted) {
		t.Errorf("error %v, want ErrConnLost before the start", err)
	}
}

func TestKeepAliveNoticesHungNode(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t)
	cfg := config(srv)
	cfg.KeepAlive = 200 * time.Millisecond
	c := dialT(t, srv, cfg)

	// The TCP connection stays open; only keepalives find the node hung.
	resume := srv.Pause()
	defer resume()
	select {
	case <-c.done:
	case <-time.After(time.Minute):
		t.Fatal("hung node not noticed after a minute")
	}
	_, err := c.Run(ctxT(t), "true", nil)
	if !errors.Is(err, ErrConnLost) || !strings.Contains(err.Error(), "keepalive") {
		t.Errorf("error %v, want ErrConnLost by keepalive", err)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t)
	c := dialT(t, srv, config(srv))
	c.Close()
	_, err := c.Run(ctxT(t), "true", nil)
	if !errors.Is(err, ErrConnLost) || !strings.Contains(err.Error(), "client closed") {
		t.Errorf("error %v, want ErrConnLost: client closed", err)
	}
}

func TestBuffers(t *testing.T) {
	tail := &tailBuffer{max: 5}
	for _, s := range []string{"ab", "cd", "efg", "", "0123456789", "x"} {
		tail.Write([]byte(s))
	}
	if got := string(tail.bytes()); got != "6789x" {
		t.Errorf("tail %q, want %q", got, "6789x")
	}

	overflowed := 0
	capped := &cappedBuffer{max: 4, overflow: func() { overflowed++ }}
	for _, s := range []string{"ab", "cd", "e", "fgh"} {
		if n, err := capped.Write([]byte(s)); n != len(s) || err != nil {
			t.Errorf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if !capped.overflowed || overflowed != 1 || capped.buf.Len() != 0 {
		t.Errorf("capped: overflowed %v, %d calls, %d bytes kept", capped.overflowed, overflowed, capped.buf.Len())
	}
}
