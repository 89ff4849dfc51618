package services

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/testutil"
)

func TestProcesses(t *testing.T) {
	p := &Processes{Dir: t.TempDir()}
	ctx := context.Background()
	testutil.RequireCommands(t, "sleep")
	cmd, err := Command("sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	u := Unit{Name: "s", Command: cmd, StopTimeout: time.Second}
	if err := p.Start(ctx, u); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(ctx, "s") })
	pid := p.pid("s")
	if pid == 0 {
		t.Fatal("not running")
	}
	if err := p.Start(ctx, u); err != nil || p.pid("s") != pid {
		t.Fatal("an unchanged unit was restarted")
	}
	if err := p.Restart(ctx, "s"); err != nil || p.pid("s") == pid || p.pid("s") == 0 {
		t.Fatalf("restart: %v", err)
	}
	if err := p.Stop(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := p.Active(ctx, "s"); ok {
		t.Fatal("still active after stop")
	}
	bad, _ := Command("false")
	if err := p.Start(ctx, Unit{Name: "f", Command: bad}); err == nil || !strings.Contains(err.Error(), "exited right after start") {
		t.Fatalf("a daemon that dies at once: %v", err)
	}
}
