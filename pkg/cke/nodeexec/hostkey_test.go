package nodeexec

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/openneco/neco/pkg/cke/nodeexec/sshdtest"
)

func TestHostKeyPinnedOnFirstUseThenChanged(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t)
	cfg := config(srv)
	store := cfg.HostKeys.(*MemoryHostKeys)

	c := dialT(t, srv, cfg)
	c.Close()
	pinned, ok, _ := store.Lookup(srv.Addr)
	if !ok || !bytes.Equal(pinned, srv.HostKey.Marshal()) {
		t.Fatalf("pinned %v, %x; want the server's key", ok, pinned)
	}
	dialT(t, srv, cfg).Close() // the pinned key matches

	// The machine is reinstalled: same address, new host key.
	srv.Stop()
	srv2 := sshdtest.StartWith(t, sshdtest.Options{Addr: srv.Addr, Signer: srv.Signer})
	_, err := Dial(ctxT(t), srv.Addr, cfg)
	var changed *HostKeyChangedError
	if !errors.As(err, &changed) {
		t.Fatalf("error %v, want a HostKeyChangedError", err)
	}
	want := HostKeyChangedError{Addr: srv.Addr, Want: ssh.FingerprintSHA256(srv.HostKey), Got: ssh.FingerprintSHA256(srv2.HostKey)}
	if *changed != want {
		t.Errorf("error %+v, want %+v", *changed, want)
	}
	if !strings.Contains(err.Error(), "ckecli ssh forget "+srv.Addr) {
		t.Errorf("error %q does not say how to fix it", err)
	}
	if k, _, _ := store.Lookup(srv.Addr); !bytes.Equal(k, pinned) {
		t.Error("the pinned key changed")
	}

	// Once forgotten, the new key is pinned.
	store.Forget(srv.Addr)
	dialT(t, srv2, cfg).Close()
	if k, _, _ := store.Lookup(srv.Addr); !bytes.Equal(k, srv2.HostKey.Marshal()) {
		t.Error("the new key was not pinned")
	}
}

func newHostKeys(t *testing.T) (ecdsaKey, ed25519Key crypto.Signer) {
	t.Helper()
	e, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, d, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return e, d
}

func TestHostKeyOfPinnedType(t *testing.T) {
	t.Parallel()
	ecdsaKey, ed25519Key := newHostKeys(t)
	// The client's default preference would pick the ECDSA key.
	srv := sshdtest.StartWith(t, sshdtest.Options{HostKeys: []crypto.Signer{ecdsaKey, ed25519Key}})
	cfg := config(srv)
	cfg.HostKeys.Pin(srv.Addr, srv.HostKeys[1].Marshal())
	dialT(t, srv, cfg).Close()

	// A node that no longer has a key of the pinned type has changed its
	// key.
	srv2 := sshdtest.StartWith(t, sshdtest.Options{HostKeys: []crypto.Signer{ecdsaKey}})
	cfg = config(srv2)
	other, _ := newHostKeys(t)
	otherPub, _ := ssh.NewPublicKey(other.Public())
	_, ed := newHostKeys(t)
	edPub, _ := ssh.NewPublicKey(ed.Public())
	cfg.HostKeys.Pin(srv2.Addr, edPub.Marshal())
	_, err := Dial(ctxT(t), srv2.Addr, cfg)
	var changed *HostKeyChangedError
	if !errors.As(err, &changed) || changed.Got != ssh.FingerprintSHA256(srv2.HostKey) {
		t.Errorf("pinned ed25519, offered ecdsa: error %v, want a HostKeyChangedError", err)
	}
	// Nor does another key of the same type do.
	cfg = config(srv2)
	cfg.HostKeys.Pin(srv2.Addr, otherPub.Marshal())
	if _, err := Dial(ctxT(t), srv2.Addr, cfg); !errors.As(err, &changed) {
		t.Errorf("another ecdsa key: error %v, want a HostKeyChangedError", err)
	}
}

// racingStore pins another key whenever the caller pins: a concurrent
// Dial won the race to pin.
type racingStore struct {
	MemoryHostKeys
	other []byte
}

func (s *racingStore) Pin(addr string, key []byte) error {
	s.MemoryHostKeys.Pin(addr, s.other)
	return s.MemoryHostKeys.Pin(addr, key)
}

func TestHostKeyPinRace(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t)
	_, ed := newHostKeys(t)
	edPub, _ := ssh.NewPublicKey(ed.Public())
	cfg := config(srv)
	cfg.HostKeys = &racingStore{other: edPub.Marshal()}
	_, err := Dial(ctxT(t), srv.Addr, cfg)
	var changed *HostKeyChangedError
	if !errors.As(err, &changed) {
		t.Errorf("error %v, want a HostKeyChangedError", err)
	}
}

func TestMemoryHostKeys(t *testing.T) {
	var m MemoryHostKeys
	if _, ok, err := m.Lookup("a:22"); ok || err != nil {
		t.Fatalf("empty store: %v, %v", ok, err)
	}
	key := []byte("first")
	m.Pin("a:22", key)
	key[0] = 'X' // the store keeps its own copy
	m.Pin("a:22", []byte("second"))
	got, ok, _ := m.Lookup("a:22")
	if !ok || string(got) != "first" {
		t.Errorf("pinned %q, want the first key", got)
	}
	got[0] = 'Y'
	if got, _, _ := m.Lookup("a:22"); string(got) != "first" {
		t.Errorf("Lookup shares its slice: %q", got)
	}
	m.Forget("a:22")
	if _, ok, _ := m.Lookup("a:22"); ok {
		t.Error("key not forgotten")
	}
}

func TestHostKeyChangedMessage(t *testing.T) {
	tests := []struct{ addr, forget string }{
		{"10.0.0.1:22", "ckecli ssh forget 10.0.0.1 "},
		{"10.0.0.1:2222", "ckecli ssh forget 10.0.0.1:2222 "},
		{"[fd00::1]:22", "ckecli ssh forget fd00::1 "},
	}
	for _, tt := range tests {
		msg := (&HostKeyChangedError{Addr: tt.addr, Want: "SHA256:a", Got: "SHA256:b"}).Error()
		if !strings.Contains(msg, tt.forget) || !strings.Contains(msg, "pinned SHA256:a, offered SHA256:b") ||
			!strings.Contains(msg, "reinstalled") {
			t.Errorf("%s: %q", tt.addr, msg)
		}
	}
}

func TestDialErrors(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t)

	t.Run("unknown client key", func(t *testing.T) {
		cfg := config(srv)
		cfg.Signer = sshdtest.Start(t).Signer
		_, err := Dial(ctxT(t), srv.Addr, cfg)
		if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
			t.Errorf("error %v, want an authentication failure", err)
		}
	})
	t.Run("incomplete config", func(t *testing.T) {
		cfg := config(srv)
		cfg.HostKeys = nil
		if _, err := Dial(ctxT(t), srv.Addr, cfg); err == nil || !strings.Contains(err.Error(), "no host key store") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("bad address", func(t *testing.T) {
		if _, err := Dial(ctxT(t), "node 1", config(srv)); err == nil {
			t.Error("no error")
		}
	})
	t.Run("silent server", func(t *testing.T) {
		// Accepts connections and never speaks: the dial timeout ends it.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				defer c.Close()
			}
		}()
		cfg := config(srv)
		cfg.DialTimeout = 300 * time.Millisecond
		_, err = Dial(ctxT(t), l.Addr().String(), cfg)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "within 300ms") {
			t.Errorf("error %v, want the dial timeout", err)
		}
		ctx, cancel := context.WithCancel(ctxT(t))
		cancel()
		if _, err := Dial(ctx, l.Addr().String(), config(srv)); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled: error %v", err)
		}
	})
}
