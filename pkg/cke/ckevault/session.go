package ckevault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// LoginConfig is where the engine's Vault is and how it logs in.
type LoginConfig struct {
	// Address is Vault's URL, for example https://10.0.0.1:8200.
	Address string
	// CACertPEM verifies Vault's certificate; empty means the system's roots.
	CACertPEM []byte
	// RoleID and SecretID are the Credentials of Init.
	RoleID, SecretID string
}

// Session is the engine logged in to Vault with AppRole cke. Its methods
// are safe for concurrent use; Run keeps its token alive.
type Session struct {
	cfg    LoginConfig
	client *vault.Client

	mu      sync.Mutex
	auth    *vault.Secret                  // the answer of the last login
	expires time.Time                      // of its token, as Vault said at the login
	roles   map[string]map[string]RoleSpec // by CA and name: written in this session
}

// Login logs in to Vault with cfg's credentials.
func Login(ctx context.Context, cfg LoginConfig) (*Session, error) {
	vc := vault.DefaultConfig()
	if vc.Error != nil {
		return nil, fmt.Errorf("ckevault: vault client configuration: %w", vc.Error)
	}
	vc.Address = cfg.Address
	vc.Timeout = 30 * time.Second
	if len(cfg.CACertPEM) > 0 {
		if err := vc.ConfigureTLS(&vault.TLSConfig{CACertBytes: cfg.CACertPEM}); err != nil {
			return nil, fmt.Errorf("ckevault: vault TLS configuration: %w", err)
		}
	}
	c, err := vault.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("ckevault: vault client: %w", err)
	}
	c.ClearToken() // not VAULT_TOKEN
	s := &Session{cfg: cfg, client: c, roles: map[string]map[string]RoleSpec{}}
	if err := s.login(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Client is the session's Vault client; its token changes when Run logs in
// again.
func (s *Session) Client() *vault.Client { return s.client }

func (s *Session) login(ctx context.Context) error {
	// A client without a token: a stale one must not go with the login.
	c, err := s.client.Clone()
	if err != nil {
		return fmt.Errorf("ckevault: vault client: %w", err)
	}
	c.ClearToken()
	sent := time.Now()
	sec, err := c.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{
		"role_id": s.cfg.RoleID, "secret_id": s.cfg.SecretID,
	})
	if err != nil {
		return fmt.Errorf("ckevault: log in to %s with approle %s: %w", s.cfg.Address, AppRoleName, err)
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return fmt.Errorf("ckevault: log in to %s: vault answered no token", s.cfg.Address)
	}
	s.mu.Lock()
	s.auth = sec
	s.expires = sent.Add(time.Duration(sec.Auth.LeaseDuration) * time.Second)
	s.mu.Unlock()
	s.client.SetToken(sec.Auth.ClientToken)
	return nil
}

// Run keeps the session's token alive until ctx is done (then it returns
// nil): it renews the token (api.LifetimeWatcher) and logs in again when
// the token reaches its maximum lifetime, or when renewing fails for
// another reason (no answer, 5xx) until the token (nearly) expires, or when
// a renewal came too late for a token that expired. It returns an error, a
// *vault.ResponseError inside, when Vault denies a renewal of a token that
// has not expired (403: the token was revoked, or its secret_id or role
// deleted) or refuses a login (a 4xx answer: the secret_id or the role was
// deleted); the engine then exits rather than run without Vault. Transient
// failures of a login (no answer, 5xx) are retried. Call Run once per
// session.
func (s *Session) Run(ctx context.Context) error {
	for {
		if err := s.renew(ctx); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		if err := s.loginAgain(ctx); err != nil {
			return err
		}
	}
}

// renew renews the token until it cannot: nil when the session should log
// in again (or ctx is done), an error when Vault denied a renewal.
func (s *Session) renew(ctx context.Context) error {
	s.mu.Lock()
	auth, expires := s.auth, s.expires
	s.mu.Unlock()

	// The watcher alone would not say that Vault denied a renewal: it
	// waits for the token to expire and reports nothing.
	denied := make(chan error, 1)
	wc := s.client.WithResponseCallbacks(func(r *vault.Response) {
		if r.StatusCode == http.StatusForbidden {
			select {
			case denied <- r.Error(): // a *vault.ResponseError
			default:
			}
		}
	})
	w, err := wc.NewLifetimeWatcher(&vault.LifetimeWatcherInput{Secret: auth})
	if err != nil {
		return fmt.Errorf("ckevault: renew token: %w", err)
	}
	go w.Start()
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-w.RenewCh():
			if r.Secret != nil && r.Secret.Auth != nil {
				expires = time.Now().Add(time.Duration(r.Secret.Auth.LeaseDuration) * time.Second)
			}
		case err := <-denied:
			if time.Now().After(expires) {
				// Renewed too late (the engine or Vault stalled): not a
				// matter of permission.
				return nil
			}
			return fmt.Errorf("ckevault: renew token: %w", err)
		case <-w.DoneCh():
			// Its maximum lifetime reached, or renewals failed until it
			// (nearly) expired.
			return nil
		}
	}
}

// loginAgain logs in, retrying transient failures until ctx is done (then
// it returns nil).
func (s *Session) loginAgain(ctx context.Context) error {
	wait := time.Second
	for {
		err := s.login(ctx)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		var re *vault.ResponseError
		if errors.As(err, &re) && re.StatusCode >= 400 && re.StatusCode < 500 {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		wait = min(2*wait, 30*time.Second)
	}
}
