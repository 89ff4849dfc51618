package bird

import (
	"bufio"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/testutil"
	"golang.org/x/sys/unix"
)

func read(t *testing.T, s string) Reply {
	t.Helper()
	r, err := readReply(bufio.NewReader(strings.NewReader(s)))
	if err != nil {
		t.Fatalf("readReply: %v", err)
	}
	return r
}

// Replies as BIRD 2.0.12 sends them.
const (
	protocolsReply = "2002-Name       Proto      Table      State  Since         Info\n" +
		"1002-device1    Device     ---        up     14:08:23.679  \n" +
		" bfd1       BFD        ---        up     14:08:23.679  \n" +
		" kernel4    Kernel     master4    up     14:08:23.679  \n" +
		" tor1       BGP        ---        up     14:08:24.101  Established   \n" +
		" tor2       BGP        ---        start  2026-11-22 09:00:00  Active        Socket: Connection refused\n" +
		" a-very-long-protocol-name BGP ---  start  2026-11-22  Idle          Error: Hold timer expired\n" +
		"0000 \n"
	bfdReply = "1020-bfd1:\n" +
		" IP address                Interface  State      Since         Interval  Timeout\n" +
		" 10.69.0.65                eth0       Up         14:00:01.123    0.050    0.150\n" +
		" 10.69.0.129               eth1       Down       2026-11-22 09:00:00    1.000    0.000\n" +
		"0000 \n"
)

func TestParseProtocols(t *testing.T) {
	got, err := ParseProtocols(read(t, protocolsReply))
	if err != nil {
		t.Fatal(err)
	}
	want := []Protocol{
		{"device1", "Device", "---", "up", "14:08:23.679", ""},
		{"bfd1", "BFD", "---", "up", "14:08:23.679", ""},
		{"kernel4", "Kernel", "master4", "up", "14:08:23.679", ""},
		{"tor1", "BGP", "---", "up", "14:08:24.101", "Established"},
		{"tor2", "BGP", "---", "start", "2026-11-22 09:00:00", "Active Socket: Connection refused"},
		{"a-very-long-protocol-name", "BGP", "---", "start", "2026-11-22", "Idle Error: Hold timer expired"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d protocols %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("row %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	for name, state := range map[int]string{0: "", 3: "Established", 4: "Active", 5: "Idle"} {
		if s := got[name].BGPState(); s != state {
			t.Errorf("%s BGPState = %q, want %q", got[name].Name, s, state)
		}
	}
}

func TestParseBFDSessions(t *testing.T) {
	got, err := ParseBFDSessions(read(t, bfdReply))
	if err != nil {
		t.Fatal(err)
	}
	want := []BFDSession{
		{"bfd1", netip.MustParseAddr("10.69.0.65"), "eth0", "Up", "14:00:01.123", 50 * time.Millisecond, 150 * time.Millisecond},
		{"bfd1", netip.MustParseAddr("10.69.0.129"), "eth1", "Down", "2026-11-22 09:00:00", time.Second, 0},
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestReply(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		lines   int
		errCode int
	}{
		{"ok", "0002-Reading configuration from /x\n0020 Configuration OK\n", 2, 0},
		{"rejected", "0002-Reading configuration from /x\n8002 /x:1:1 syntax error, unexpected GARBAGE\n", 2, 8002},
		{"multi-line status", "1000-BIRD 2.0.12\n1011-Router ID is 10.0.0.1\n Hostname is vm\n0013 Daemon is up and running\n", 4, 0},
		{"spontaneous lines are skipped", "+hello\n0000 \n", 1, 0},
		{"parse error", "9001 syntax error\n", 1, 9001},
		{"bare code", "0000\n", 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := read(t, tt.in)
			if len(r) != tt.lines {
				t.Errorf("got %d lines %+v, want %d", len(r), r, tt.lines)
			}
			err := r.Err()
			var be *Error
			switch {
			case tt.errCode == 0 && err != nil:
				t.Errorf("Err = %v, want nil", err)
			case tt.errCode != 0 && (!errors.As(err, &be) || be.Code != tt.errCode):
				t.Errorf("Err = %v, want code %d", err, tt.errCode)
			}
		})
	}
}

func TestReplyMalformed(t *testing.T) {
	for _, in := range []string{
		" continuation first\n",
		"abcd-x\n",
		"12\n",
		"-123 x\n",
		"0001-unterminated\n",
	} {
		_, err := readReply(bufio.NewReader(strings.NewReader(in)))
		if err == nil {
			t.Errorf("%q: no error", in)
		}
	}
	if _, err := ParseProtocols(Reply{{Code: 1002, Text: "only three fields"}}); !errors.Is(err, ErrMalformed) {
		t.Errorf("short protocol row: %v", err)
	}
	if _, err := ParseBFDSessions(Reply{{Code: 1020, Text: "notanip eth0 Up 1:2:3 0.1 0.3"}}); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad BFD address: %v", err)
	}
	if _, err := ParseBFDSessions(Reply{{Code: 1020, Text: "10.0.0.1 eth0 Up 1:2:3 x 0.3"}}); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad BFD interval: %v", err)
	}
}

func TestQuote(t *testing.T) {
	if _, err := quote(`/tmp/a"b`); err == nil {
		t.Error("a quote in a file name was accepted")
	}
	if q, err := quote("/tmp/bird.conf"); err != nil || q != `"/tmp/bird.conf"` {
		t.Errorf("quote = %s, %v", q, err)
	}
}

// FuzzReply feeds arbitrary bytes to the reply reader and the table parsers:
// they may return errors but must not panic.
func FuzzReply(f *testing.F) {
	f.Add(protocolsReply)
	f.Add(bfdReply)
	f.Add("0002-Reading\n8002 x\n")
	f.Fuzz(func(t *testing.T, in string) {
		r, _ := readReply(bufio.NewReader(strings.NewReader(in)))
		r.Err()
		ParseProtocols(r)
		ParseBFDSessions(r)
	})
}

func TestTuneErrorSaysWhatFailed(t *testing.T) {
	rt, oom := errors.New("operation not permitted"), errors.New("permission denied")
	tests := []struct {
		name      string
		err       *TuneError
		want, not []string
	}{
		{"OOM only", &TuneError{OOM: oom}, []string{"no OOM protection: permission denied"}, []string{"real-time"}},
		{"real-time only", &TuneError{Realtime: rt}, []string{"no real-time priority: operation not permitted"}, []string{"OOM"}},
		{"both", &TuneError{Realtime: rt, OOM: oom}, []string{"no real-time priority: operation not permitted", "no OOM protection: permission denied"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := tt.err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q lacks %q", msg, w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(msg, n) {
					t.Errorf("%q mentions %q, which did not fail", msg, n)
				}
			}
			if tt.err.OOM != nil && !errors.Is(tt.err, oom) || tt.err.Realtime != nil && !errors.Is(tt.err, rt) {
				t.Errorf("errors.Is does not find the causes in %v", tt.err)
			}
		})
	}
}

// TestTune tunes a child process and checks that the error names exactly
// what did not take effect (in unprivileged containers the OOM score is
// refused while SCHED_RR is granted).
func TestTune(t *testing.T) {
	testutil.RequireRoot(t)
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := cmd.Process.Pid
	err := Tune(pid)
	var te *TuneError
	if err != nil && !errors.As(err, &te) {
		t.Fatalf("Tune: %v is not a *TuneError", err)
	}
	if te == nil {
		te = &TuneError{}
	}
	attr, aerr := unix.SchedGetAttr(pid, 0)
	if aerr != nil {
		t.Fatal(aerr)
	}
	if rr := attr.Policy == unix.SCHED_RR && attr.Priority == 10; rr != (te.Realtime == nil) {
		t.Errorf("policy %d priority %d, but the real-time error is %v", attr.Policy, attr.Priority, te.Realtime)
	}
	b, rerr := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "oom_score_adj"))
	if rerr != nil {
		t.Fatal(rerr)
	}
	if protected := strings.TrimSpace(string(b)) == "-1000"; protected != (te.OOM == nil) {
		t.Errorf("oom_score_adj %s, but the OOM error is %v", b, te.OOM)
	}
	t.Logf("Tune: %v", err)
}
