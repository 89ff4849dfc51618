package bootserver

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/pki"
)

// fakeVault is an HTTPS server speaking the part of Vault's API a boot
// server uses for its registry certificate (AppRole login, PKI sign), with
// a real CA behind the sign endpoint.
type fakeVault struct {
	ca    *pki.CA
	ttl   atomic.Int64 // of the certificates it signs
	signs atomic.Int32
	port  int
}

func startFakeVault(t *testing.T, p Paths) *fakeVault {
	t.Helper()
	ca, err := pki.NewCA("fake ca/server", 24*365*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	v := &fakeVault{ca: ca}
	v.ttl.Store(int64(CertTTL))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req map[string]any
		json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/auth/approle/login":
			w.Write([]byte(`{"auth":{"client_token":"t-1","lease_duration":3600}}`))
		case "/v1/" + MountServer + "/sign/" + PKIRole:
			csr, err := pki.ParseCSR([]byte(req["csr"].(string)))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			var sans []string
			for _, k := range []string{"alt_names", "ip_sans"} {
				if s, _ := req[k].(string); s != "" {
					sans = append(sans, strings.Split(s, ",")...)
				}
			}
			cert, err := ca.Sign(csr, req["common_name"].(string), sans, pki.ServerAuth, time.Duration(v.ttl.Load()))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			v.signs.Add(1)
			json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"certificate": strings.TrimSpace(string(cert))}})
		default:
			http.NotFound(w, r)
		}
	}))
	// Its own certificate, from the same CA, as Vault's is.
	certPEM, keyPEM, err := ca.Issue("vault", []string{"127.0.0.1"}, pki.ServerAuth, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	v.port, _ = strconv.Atoi(port)

	if err := os.MkdirAll(p.NecoDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.ServerCA, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.AppRole, []byte(`{"role_id":"boot-server","secret_id":"s"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestEnsureRegistryCert issues the registry certificate when it is
// missing, keeps a current one, and issues it again when it expires within
// RegistryRenewBefore or no longer names the server's address.
func TestEnsureRegistryCert(t *testing.T) {
	p := NewPaths(t.TempDir())
	v := startFakeVault(t, p)
	me := Server{LRN: 0, Address: "127.0.0.1"}
	c := &Cluster{Servers: []Server{me}, VaultPort: v.port}
	c.FillDefaults()
	ctx := context.Background()

	ensure := func(me Server, wantIssued bool) {
		t.Helper()
		issued, err := EnsureRegistryCert(ctx, c, me, p)
		if err != nil || issued != wantIssued {
			t.Fatalf("EnsureRegistryCert = %v, %v; want issued %v", issued, err, wantIssued)
		}
		if err := RegistryCertCurrent(RegistryCertSpec(me, p), time.Now()); err != nil {
			t.Fatalf("after EnsureRegistryCert: %v", err)
		}
	}
	ensure(me, true)
	cert, err := pki.CheckFile(p.RegistryCert, v.ca.Cert, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "boot-0" || !hasSAN(cert, "127.0.0.1") || !hasSAN(cert, "boot-0") {
		t.Errorf("certificate CN %q, IPs %v, names %v", cert.Subject.CommonName, cert.IPAddresses, cert.DNSNames)
	}
	if st, _ := os.Stat(p.RegistryKey); st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", st.Mode().Perm())
	}
	ensure(me, false)

	// Expiring within the renewal margin.
	v.ttl.Store(int64(RegistryRenewBefore / 2))
	if err := os.Remove(p.RegistryCert); err != nil {
		t.Fatal(err)
	}
	issued, err := EnsureRegistryCert(ctx, c, me, p)
	if err != nil || !issued {
		t.Fatalf("missing certificate: %v, %v", issued, err)
	}
	if err := RegistryCertCurrent(RegistryCertSpec(me, p), time.Now()); err == nil {
		t.Fatal("a certificate expiring within the margin is current")
	}
	v.ttl.Store(int64(CertTTL))
	ensure(me, true)

	// The server's address changed.
	moved := Server{LRN: 0, Address: "127.0.0.1"}
	spec := RegistryCertSpec(moved, p)
	spec.SANs = append(spec.SANs, "10.0.0.9")
	if err := RegistryCertCurrent(spec, time.Now()); err == nil {
		t.Error("a certificate lacking an address is current")
	}
	if n := v.signs.Load(); n != 3 {
		t.Errorf("%d certificates signed, want 3", n)
	}
}
