package cli

import (
	"errors"
	"fmt"
	"testing"

	"github.com/spf13/cobra"
)

func TestCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, ExitOK},
		{"plain", errors.New("x"), ExitFailure},
		{"wrapped exit error", fmt.Errorf("ctx: %w", WithCode(ExitNotFound, errors.New("gone"))), ExitNotFound},
		{"usage", UsageError("bad"), ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Code(tt.err); got != tt.want {
				t.Errorf("Code() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestOutputFlag(t *testing.T) {
	var out Output
	cmd := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { return nil }}
	AddOutputFlag(cmd, &out, OutputSimple, OutputJSON)
	if out != OutputSimple {
		t.Errorf("default = %s, want simple", out)
	}
	cmd.SetArgs([]string{"-o", "json"})
	if err := cmd.Execute(); err != nil || out != OutputJSON {
		t.Errorf("-o json: out=%s err=%v", out, err)
	}
	cmd.SetArgs([]string{"-o", "yaml"})
	if err := cmd.Execute(); err == nil {
		t.Error("-o yaml accepted")
	}
}
