package membership

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// SystemdHealth reports the units systemd lists as failed.
type SystemdHealth struct{}

// FailedUnits implements Health with `systemctl list-units --state=failed`.
func (SystemdHealth) FailedUnits(ctx context.Context) ([]string, error) {
	out, err := exec.CommandContext(ctx, "systemctl", "list-units", "--state=failed", "--no-legend", "--plain").Output()
	if err != nil {
		return nil, fmt.Errorf("systemctl list-units: %w", err)
	}
	return parseFailedUnits(out), nil
}

// parseFailedUnits takes the first column of `systemctl list-units --plain
// --no-legend`.
func parseFailedUnits(out []byte) []string {
	var units []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 && strings.Contains(fields[0], ".") {
			units = append(units, fields[0])
		}
	}
	return units
}
