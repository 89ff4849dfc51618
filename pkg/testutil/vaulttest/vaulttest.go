// Package vaulttest runs the real Vault (bin/vault, on PATH) in dev mode for
// a test: in memory, unsealed, one root token, HTTP (HTTPS with StartTLS)
// on a free loopback port. Without the vault binary the test is skipped, or fails under
// CI=true (testutil.Missing).
package vaulttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/openneco/neco/pkg/testutil"
)

// Start runs a dev-mode Vault until t ends and returns its address
// (http://127.0.0.1:<port>), its root token and a client with that token.
func Start(t testing.TB) (addr, rootToken string, client *vault.Client) {
	t.Helper()
	v := startRetrying(t, false)
	return v.addr, v.token, v.client
}

// StartTLS is Start with TLS (https://127.0.0.1:<port>): Vault generates a
// CA, whose certificate caCertPEM is, and its server certificate; client
// trusts the CA.
func StartTLS(t testing.TB) (addr, rootToken string, caCertPEM []byte, client *vault.Client) {
	t.Helper()
	v := startRetrying(t, true)
	return v.addr, v.token, v.caPEM, v.client
}

type server struct {
	addr, token string
	caPEM       []byte
	client      *vault.Client
}

func startRetrying(t testing.TB, tls bool) *server {
	t.Helper()
	bin := testutil.RequireCommands(t, "vault")[0]
	token := make([]byte, 16)
	rand.Read(token)
	// The port is free when picked but could be taken before Vault listens,
	// and dev mode's cluster listener takes the next one: try again with
	// another.
	var lastErr error
	for range 3 {
		v, err := start(t, bin, hex.EncodeToString(token), tls)
		if err == nil {
			return v
		}
		lastErr = err
		t.Logf("vaulttest: %v; trying another port", err)
	}
	t.Fatalf("vaulttest: %v", lastErr)
	return nil
}

// logBuffer is Vault's output, kept for the error of a failed start.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func start(t testing.TB, bin, rootToken string, tls bool) (*server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hostport := l.Addr().String()
	l.Close()

	dir := t.TempDir()
	args := []string{"server", "-dev",
		"-dev-root-token-id=" + rootToken,
		"-dev-listen-address=" + hostport,
		"-dev-no-store-token", // not into ~/.vault-token
		"-log-level=warn"}
	scheme := "http"
	if tls {
		args = append(args, "-dev-tls", "-dev-tls-cert-dir="+dir)
		scheme = "https"
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"HOME=" + dir, "VAULT_DISABLE_MLOCK=true"}
	var log logBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	testutil.DieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}

	v := &server{addr: scheme + "://" + hostport, token: rootToken}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		if v.client == nil {
			v.client, err = newClient(v.addr, rootToken, filepath.Join(dir, "vault-ca.pem"), tls)
		}
		if v.client != nil {
			var h *vault.HealthResponse
			h, err = v.client.Sys().HealthWithContext(ctx)
			if err == nil && h.Initialized && !h.Sealed && !h.Standby {
				break
			}
		}
		select {
		case <-exited:
			return nil, errors.New("vault exited at start:\n" + log.String())
		case <-ctx.Done():
			stop()
			return nil, fmt.Errorf("vault did not serve within a minute (%v):\n%s", err, log.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if tls {
		if v.caPEM, err = os.ReadFile(filepath.Join(dir, "vault-ca.pem")); err != nil {
			stop()
			return nil, err
		}
	}
	t.Cleanup(stop)
	return v, nil
}

// newClient is a client of addr with token; with tls, it trusts the CA
// Vault writes to caFile, which must exist.
func newClient(addr, token, caFile string, tls bool) (*vault.Client, error) {
	cfg := vault.DefaultConfig()
	cfg.Address = addr
	cfg.Timeout = 30 * time.Second
	if tls {
		if _, err := os.Stat(caFile); err != nil {
			return nil, err
		}
		if err := cfg.ConfigureTLS(&vault.TLSConfig{CACert: caFile}); err != nil {
			return nil, err
		}
	}
	c, err := vault.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	c.SetToken(token)
	return c, nil
}
