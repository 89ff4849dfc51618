package membership

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// CommandHealth reports what a command says failed, for an OS without
// systemd: each non-empty line the command prints names one failed
// service. A command that cannot run, exits non-zero or does not finish
// within Timeout is a failed check (CheckFailed), never "nothing failed".
type CommandHealth struct {
	// Path is the executable; it runs without arguments.
	Path string
	// Timeout bounds one run; 0 means 30 s.
	Timeout time.Duration
}

// FailedUnits implements Health by running the command.
func (c CommandHealth) FailedUnits(ctx context.Context) ([]string, error) {
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, c.Path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			err = errors.Join(err, ctx.Err())
		}
		return nil, fmt.Errorf("health command %s: %w: %s", c.Path, err, bytes.TrimSpace(stderr.Bytes()))
	}
	var failed []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if name := strings.TrimSpace(sc.Text()); name != "" {
			failed = append(failed, name)
		}
	}
	return failed, nil
}
