package bird

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Apply makes config the configuration of the BIRD behind c, whose
// configuration file is path, with birdc's "configure" semantics:
//
//   - if path already holds config, nothing happens (changed is false);
//   - otherwise config is written to a temporary file next to path, BIRD
//     checks it (configure check) and switches to it (configure); BIRD
//     restarts only the protocols whose configuration changed;
//   - only then does the file replace path, so path always holds the
//     configuration BIRD runs and a restarted BIRD runs it too.
//
// If BIRD rejects config, the running configuration and path stay as they
// were, config is kept as path.rejected, and the returned error is a *Error
// with BIRD's message (which names path.rejected).
func Apply(ctx context.Context, c *Client, path string, config []byte) (changed bool, err error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, config) {
		return false, nil
	}
	tmp, err := writeTemp(path, config)
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	if err := c.Check(ctx, tmp); err != nil {
		return false, keepRejected(tmp, path, err)
	}
	if err := c.Configure(ctx, tmp); err != nil {
		return false, keepRejected(tmp, path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return true, fmt.Errorf("bird: BIRD runs the new configuration but %s was not replaced: %w", path, err)
	}
	return true, nil
}

// keepRejected keeps a configuration BIRD rejected as path.rejected, for
// the operator to inspect, and makes BIRD's message name that file.
func keepRejected(tmp, path string, err error) error {
	rejected := path + ".rejected"
	if os.Rename(tmp, rejected) != nil {
		return err
	}
	var be *Error
	if errors.As(err, &be) {
		return &Error{Code: be.Code, Message: strings.ReplaceAll(be.Message, tmp, rejected)}
	}
	return err
}

// writeTemp writes data to a new file in path's directory and syncs it.
func writeTemp(path string, data []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return "", fmt.Errorf("bird: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("bird: write %s: %w", f.Name(), err)
	}
	return f.Name(), nil
}

// Parse has "bird -p" parse config without running it; dir receives the
// temporary file. A rejected configuration is an *Error with BIRD's
// message.
func Parse(ctx context.Context, binary, dir string, config []byte) error {
	tmp, err := writeTemp(filepath.Join(dir, "bird.conf"), config)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := parseFile(ctx, binary, tmp); err != nil {
		return keepRejected(tmp, filepath.Join(dir, "bird.conf"), err)
	}
	return nil
}

func parseFile(ctx context.Context, binary, path string) error {
	if binary == "" {
		binary = "bird"
	}
	out, err := exec.CommandContext(ctx, binary, "-p", "-c", path).CombinedOutput()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return &Error{Code: 8002, Message: strings.TrimSpace(strings.TrimPrefix(string(out), "bird: "))}
		}
		return fmt.Errorf("bird: parse %s: %w", path, err)
	}
	return nil
}

// WriteChecked writes config to path for a BIRD that is not running yet,
// after "bird -p" parsed it. If the parse fails, path is left as it was and
// the error carries BIRD's message.
func WriteChecked(ctx context.Context, binary, path string, config []byte) error {
	tmp, err := writeTemp(path, config)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := parseFile(ctx, binary, tmp); err != nil {
		return keepRejected(tmp, path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("bird: %w", err)
	}
	return nil
}
