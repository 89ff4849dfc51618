package nodeexec

import (
	"net"
	"strconv"
	"testing"
)

func TestCanonicalAddr(t *testing.T) {
	tests := []struct {
		name, addr, want string
		wantErr          bool
	}{
		{name: "IPv4", addr: "10.0.0.1", want: "10.0.0.1:22"},
		{name: "IPv4 with port", addr: "10.0.0.1:2222", want: "10.0.0.1:2222"},
		{name: "host name", addr: "Node-1.example", want: "node-1.example:22"},
		{name: "host name with port", addr: "node1:22", want: "node1:22"},
		{name: "port with leading zero", addr: "node1:022", want: "node1:22"},
		{name: "bare IPv6", addr: "fd00:0::1", want: "[fd00::1]:22"},
		{name: "bracketed IPv6", addr: "[fd00::1]", want: "[fd00::1]:22"},
		{name: "IPv6 with port", addr: "[fd00::1]:2222", want: "[fd00::1]:2222"},
		{name: "IPv6 with zone", addr: "fe80::1%eth0", want: "[fe80::1%eth0]:22"},
		{name: "empty", addr: "", wantErr: true},
		{name: "empty host", addr: ":22", wantErr: true},
		{name: "empty port", addr: "node1:", wantErr: true},
		{name: "port zero", addr: "node1:0", wantErr: true},
		{name: "port too big", addr: "node1:65536", wantErr: true},
		{name: "signed port", addr: "node1:+22", wantErr: true},
		{name: "named port", addr: "node1:ssh", wantErr: true},
		{name: "space", addr: "node 1", wantErr: true},
		{name: "user", addr: "root@node1", wantErr: true},
		{name: "path", addr: "node1/x", wantErr: true},
		{name: "unbalanced bracket", addr: "[fd00::1", wantErr: true},
		{name: "bad zone", addr: "fe80::1%a/b", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CanonicalAddr(tt.addr)
			if tt.wantErr {
				if err == nil {
					t.Errorf("CanonicalAddr(%q) = %q, want an error", tt.addr, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("CanonicalAddr(%q) = %q, %v; want %q", tt.addr, got, err, tt.want)
			}
		})
	}
}

func FuzzCanonicalAddr(f *testing.F) {
	for _, s := range []string{"10.0.0.1", "node1:2222", "[fd00::1]:22", "fe80::1%eth0", "::ffff:1.2.3.4", "[a]:1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		got, err := CanonicalAddr(addr)
		if err != nil {
			return
		}
		host, port, err := net.SplitHostPort(got)
		if err != nil || host == "" {
			t.Fatalf("CanonicalAddr(%q) = %q: not host:port", addr, got)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			t.Fatalf("CanonicalAddr(%q) = %q: bad port", addr, got)
		}
		again, err := CanonicalAddr(got)
		if err != nil || again != got {
			t.Fatalf("CanonicalAddr(%q) = %q, but CanonicalAddr(%q) = %q, %v", addr, got, got, again, err)
		}
	})
}
