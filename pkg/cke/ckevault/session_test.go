package ckevault_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/openneco/neco/pkg/cke/ckevault"
)

// shortTokens makes the AppRole's tokens live ttl between renewals and
// max in all (for this test only: the next Init restores the defaults).
func (e *env) shortTokens(t *testing.T, ttl, max time.Duration) {
	t.Helper()
	if _, err := e.root.Logical().Write("auth/approle/role/"+ckevault.AppRoleName, map[string]any{
		"token_ttl": ttl.String(), "token_max_ttl": max.String(),
	}); err != nil {
		t.Fatal(err)
	}
}

// TestRunKeepsTokenAlive: tokens of 6 s, at most 20 s: the session renews
// its token, logs in again at the end of its lifetime, and the engine's
// requests keep working throughout.
func TestRunKeepsTokenAlive(t *testing.T) {
	e := newEnv(t)
	e.shortTokens(t, 6*time.Second, 20*time.Second)
	s := e.login(t, e.creds)
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(t.Context())
	go func() { done <- s.Run(ctx) }()

	// Seen tokens (accessors) and renewals (accessor and renewal time).
	tokens, renewals := map[string]bool{}, map[string]bool{}
	failures := 0
	deadline := time.Now().Add(2 * time.Minute)
	for len(tokens) < 2 || len(renewals) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("after 2 min: %d tokens, %d renewals", len(tokens), len(renewals))
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned: %v", err)
		case <-time.After(500 * time.Millisecond):
		}
		// A request can fail in the moment a late renewal lets the token
		// expire before the session logs in again (a loaded machine, tokens
		// of seconds), not for longer.
		self, err := s.Client().Auth().Token().LookupSelf()
		if err != nil {
			failures++
			t.Logf("lookup-self with the session's token: %v", err)
			if failures > 2 {
				t.Fatalf("%d requests in a row failed", failures)
			}
			continue
		}
		failures = 0
		acc, _ := self.TokenAccessor()
		tokens[acc] = true
		if r, ok := self.Data["last_renewal_time"]; ok && r != nil {
			renewals[fmt.Sprint(acc, r)] = true
		}
	}
	t.Logf("%d tokens, %d renewals", len(tokens), len(renewals))
	// The session still issues.
	if _, err := s.Issue(t.Context(), ckevault.IssueRequest{CA: ckevault.CAKubernetes, Role: ckevault.RoleClient, CommonName: "x", TTL: time.Hour}); err != nil {
		t.Error(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("Run did not return after its context was cancelled")
	}
}

// TestRunFails: Run returns an error, rather than go on, when it cannot
// keep a token.
func TestRunFails(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name    string
		breakIt func(t *testing.T, s *ckevault.Session)
	}{
		// Vault refuses a renewal (403) or the next login (400),
		// depending on when it notices that the secret_id or role is gone.
		{"secret_id destroyed", func(t *testing.T, s *ckevault.Session) {
			if _, err := e.root.Logical().Write("auth/approle/role/"+ckevault.AppRoleName+"/secret-id/destroy", map[string]any{"secret_id": e.creds.SecretID}); err != nil {
				t.Fatal(err)
			}
		}},
		{"role deleted", func(t *testing.T, s *ckevault.Session) {
			if _, err := e.root.Logical().Delete("auth/approle/role/" + ckevault.AppRoleName); err != nil {
				t.Fatal(err)
			}
		}},
		{"token revoked", func(t *testing.T, s *ckevault.Session) {
			if err := e.root.Auth().Token().RevokeOrphan(s.Client().Token()); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			creds, err := ckevault.Init(t.Context(), e.root)
			if err != nil {
				t.Fatal(err)
			}
			e.creds = creds
			e.shortTokens(t, 3*time.Second, 6*time.Second)
			s := e.login(t, creds)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			tt.breakIt(t, s)
			select {
			case err := <-done:
				var re *vault.ResponseError
				if !errors.As(err, &re) || re.StatusCode < 400 || re.StatusCode >= 500 {
					t.Errorf("Run returned %v, want Vault's refusal (4xx)", err)
				}
				t.Logf("Run: %v", err)
			case <-time.After(2 * time.Minute):
				t.Fatal("Run did not return within 2 min")
			}
		})
	}
}

// TestRunAfterExpiry: a token that expired before its renewal (the engine
// stalled) is not a refusal: the session logs in again.
func TestRunAfterExpiry(t *testing.T) {
	e := newEnv(t)
	e.shortTokens(t, 2*time.Second, time.Minute)
	s := e.login(t, e.creds)
	waitLookup(t, s, false)
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(t.Context())
	go func() { done <- s.Run(ctx) }()
	waitLookup(t, s, true)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// waitLookup waits until the session's token works (ok) or not.
func waitLookup(t *testing.T, s *ckevault.Session, ok bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := s.Client().Auth().Token().LookupSelf()
		if (err == nil) == ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a minute, the token works: %t (%v)", err == nil, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
