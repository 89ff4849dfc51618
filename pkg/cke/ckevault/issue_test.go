package ckevault_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/cke/ckevault"
)

var (
	server = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	client = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	both   = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
)

func TestIssue(t *testing.T) {
	e := newEnv(t)
	s := e.login(t, e.creds)
	ctx := t.Context()

	tests := []struct {
		name string
		req  ckevault.IssueRequest
		o    []string
		eku  []x509.ExtKeyUsage
	}{
		{"etcd server", ckevault.IssueRequest{CA: ckevault.CAServer, Role: ckevault.RoleServer, CommonName: "cp1",
			IPSANs: []string{"10.69.0.4", "127.0.0.1"}, DNSSANs: []string{"cp1", "localhost"}, TTL: 24 * time.Hour}, nil, server},
		{"etcd peer", ckevault.IssueRequest{CA: ckevault.CAEtcdPeer, Role: ckevault.RolePeer, CommonName: "cp1",
			IPSANs: []string{"10.69.0.4"}, TTL: 24 * time.Hour}, nil, both},
		{"etcd client apiserver", ckevault.IssueRequest{CA: ckevault.CAEtcdClient, Role: ckevault.RoleClient, CommonName: "kube-apiserver", TTL: time.Hour}, nil, client},
		{"etcd client engine", ckevault.IssueRequest{CA: ckevault.CAEtcdClient, Role: ckevault.RoleClient, CommonName: "cke", TTL: 10 * time.Minute}, nil, client},
		{"kube-apiserver", ckevault.IssueRequest{CA: ckevault.CAKubernetes, Role: ckevault.RoleServer, CommonName: "kubernetes",
			IPSANs:  []string{"10.68.0.1", "10.69.0.4"},
			DNSSANs: []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
			TTL:     ckevault.MachineCertMaxTTL}, nil, server},
		{"admin", ckevault.IssueRequest{CA: ckevault.CAKubernetes, Role: ckevault.RoleAdmin, CommonName: "admin",
			Organization: "system:masters", TTL: 2 * time.Hour}, []string{"system:masters"}, client},
		{"controller-manager", ckevault.IssueRequest{CA: ckevault.CAKubernetes, Role: ckevault.RoleClient, CommonName: ckevault.CNControllerManager, TTL: time.Hour}, nil, client},
		{"scheduler", ckevault.IssueRequest{CA: ckevault.CAKubernetes, Role: ckevault.RoleClient, CommonName: ckevault.CNScheduler, TTL: time.Hour}, nil, client},
		{"kube-proxy", ckevault.IssueRequest{CA: ckevault.CAKubernetes, Role: ckevault.RoleClient, CommonName: ckevault.CNKubeProxy, TTL: time.Hour}, nil, client},
		{"kubelet", ckevault.IssueRequest{CA: ckevault.CAKubernetes, Role: ckevault.RoleKubelet, CommonName: ckevault.KubeletCN("node-7"),
			IPSANs: []string{"10.69.1.7"}, DNSSANs: []string{"node-7"}, TTL: 48 * time.Hour}, []string{"system:nodes"}, both},
		{"apiserver kubelet client", ckevault.IssueRequest{CA: ckevault.CAKubernetes, Role: ckevault.RoleClient, CommonName: ckevault.CNAPIServerKubeletClient, TTL: time.Hour}, nil, client},
		{"front proxy client", ckevault.IssueRequest{CA: ckevault.CAKubernetesAggregation, Role: ckevault.RoleClient, CommonName: ckevault.CNFrontProxyClient, TTL: time.Hour}, nil, client},
		{"webhook server", ckevault.IssueRequest{CA: ckevault.CAKubernetesWebhook, Role: ckevault.RoleServer, CommonName: "webhook",
			DNSSANs: []string{"webhook.kube-system.svc"}, TTL: time.Hour}, nil, server},
		{"short-lived", ckevault.IssueRequest{CA: ckevault.CAKubernetes, Role: ckevault.RoleAdmin, CommonName: "alice", TTL: 90 * time.Second}, []string{"system:masters"}, client},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			c, err := s.Issue(ctx, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			cert := parseCert(t, c.CertPEM)
			if cert.Subject.CommonName != tt.req.CommonName || !slices.Equal(cert.Subject.Organization, tt.o) {
				t.Errorf("subject %s, want CN=%s O=%v", cert.Subject, tt.req.CommonName, tt.o)
			}
			var ips []string
			for _, ip := range cert.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(ips, tt.req.IPSANs) || !slices.Equal(cert.DNSNames, tt.req.DNSSANs) {
				t.Errorf("SANs: IP %v DNS %v, want IP %v DNS %v", ips, cert.DNSNames, tt.req.IPSANs, tt.req.DNSSANs)
			}
			if len(cert.EmailAddresses)+len(cert.URIs) != 0 {
				t.Errorf("other SANs: %v %v", cert.EmailAddresses, cert.URIs)
			}
			if cert.KeyUsage != x509.KeyUsageDigitalSignature || !slices.Equal(cert.ExtKeyUsage, tt.eku) || cert.IsCA {
				t.Errorf("key usage %b, ext key usage %v, CA %t; want %b, %v", cert.KeyUsage, cert.ExtKeyUsage, cert.IsCA, x509.KeyUsageDigitalSignature, tt.eku)
			}
			if want := start.Add(tt.req.TTL); cert.NotAfter.Before(want.Add(-time.Minute)) || cert.NotAfter.After(want.Add(time.Minute)) {
				t.Errorf("not after %s, want about %s", cert.NotAfter, want)
			}
			if !c.NotAfter.Equal(cert.NotAfter) {
				t.Errorf("NotAfter %s, the certificate's %s", c.NotAfter, cert.NotAfter)
			}
			if want := serialString(cert); c.Serial != want {
				t.Errorf("serial %q, want %q", c.Serial, want)
			}
			if k, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
				t.Errorf("key %T", cert.PublicKey)
			}
			if _, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM); err != nil {
				t.Errorf("certificate and key: %v", err)
			}

			caPEM, err := s.CACert(ctx, tt.req.CA)
			if err != nil {
				t.Fatal(err)
			}
			if string(caPEM) != string(c.CAPEM) {
				t.Errorf("CAPEM is not the CA certificate of %s", tt.req.CA)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(caPEM)
			if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: tt.eku}); err != nil {
				t.Errorf("verify against %s: %v", tt.req.CA, err)
			}
			// Not against another CA.
			other := ckevault.CAKubernetesWebhook
			if tt.req.CA == other {
				other = ckevault.CAKubernetes
			}
			otherPEM, err := s.CACert(ctx, other)
			if err != nil {
				t.Fatal(err)
			}
			pool = x509.NewCertPool()
			pool.AppendCertsFromPEM(otherPEM)
			if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: tt.eku}); err == nil {
				t.Errorf("verifies against %s too", other)
			}
		})
	}

	t.Run("role deleted behind the session", func(t *testing.T) {
		if _, err := e.root.Logical().Delete(ckevault.CAKubernetes + "/roles/" + ckevault.RoleClient.Name); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Issue(ctx, ckevault.IssueRequest{CA: ckevault.CAKubernetes, Role: ckevault.RoleClient, CommonName: "x", TTL: time.Hour}); err != nil {
			t.Error(err)
		}
	})
	t.Run("same name, another spec", func(t *testing.T) {
		role := ckevault.RoleClient
		role.Organization = "system:masters"
		_, err := s.Issue(ctx, ckevault.IssueRequest{CA: ckevault.CAKubernetes, Role: role, CommonName: "x", TTL: time.Hour})
		if !errors.Is(err, ckevault.ErrInvalidRequest) || !strings.Contains(err.Error(), "already") {
			t.Errorf("got %v", err)
		}
	})
}

func parseCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" || len(strings.TrimSpace(string(rest))) != 0 {
		t.Fatalf("not one PEM certificate:\n%s", data)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func serialString(cert *x509.Certificate) string {
	b := cert.SerialNumber.Bytes()
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(parts, ":")
}

func TestIssueInvalid(t *testing.T) {
	e := newEnv(t)
	s := e.login(t, e.creds)
	ok := ckevault.IssueRequest{CA: ckevault.CAKubernetes, Role: ckevault.RoleClient, CommonName: "x", TTL: time.Hour}
	with := func(f func(*ckevault.IssueRequest)) ckevault.IssueRequest {
		r := ok
		f(&r)
		return r
	}
	tests := []struct {
		name string
		req  ckevault.IssueRequest
		is   error
		msg  string
	}{
		{"unknown CA", with(func(r *ckevault.IssueRequest) { r.CA = "cke/ca-nope" }), ckevault.ErrUnknownCA, `unknown CA "cke/ca-nope"`},
		{"a mount that is no CA", with(func(r *ckevault.IssueRequest) { r.CA = ckevault.SecretsMount }), ckevault.ErrUnknownCA, "unknown CA"},
		{"no CA", with(func(r *ckevault.IssueRequest) { r.CA = "" }), ckevault.ErrUnknownCA, "unknown CA"},
		{"ttl 0", with(func(r *ckevault.IssueRequest) { r.TTL = 0 }), ckevault.ErrInvalidRequest, "ttl 0s: at least 1s"},
		{"negative ttl", with(func(r *ckevault.IssueRequest) { r.TTL = -time.Hour }), ckevault.ErrInvalidRequest, "at least 1s"},
		{"ttl over the maximum", with(func(r *ckevault.IssueRequest) { r.Role = ckevault.RoleAdmin; r.TTL = 31 * 24 * time.Hour }),
			ckevault.ErrInvalidRequest, "ttl 744h0m0s exceeds the maximum 720h0m0s of role admin"},
		{"no common name", with(func(r *ckevault.IssueRequest) { r.CommonName = "" }), ckevault.ErrInvalidRequest, "no common name"},
		{"organization the role does not fix", with(func(r *ckevault.IssueRequest) { r.Organization = "system:masters" }),
			ckevault.ErrInvalidRequest, `organization "system:masters", but role client issues O=""`},
		{"bad IP SAN", with(func(r *ckevault.IssueRequest) { r.IPSANs = []string{"10.0.0.300"} }), ckevault.ErrInvalidRequest, `IP SAN "10.0.0.300"`},
		{"empty DNS SAN", with(func(r *ckevault.IssueRequest) { r.DNSSANs = []string{""} }), ckevault.ErrInvalidRequest, "DNS SAN"},
		{"role without usage", with(func(r *ckevault.IssueRequest) { r.Role = ckevault.RoleSpec{Name: "x", MaxTTL: time.Hour} }),
			ckevault.ErrInvalidRequest, "neither for servers nor for clients"},
		{"role without name", with(func(r *ckevault.IssueRequest) { r.Role.Name = "" }), ckevault.ErrInvalidRequest, "role name"},
		{"role with a path as name", with(func(r *ckevault.IssueRequest) { r.Role.Name = "../x" }), ckevault.ErrInvalidRequest, "role name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Issue(t.Context(), tt.req)
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("got %v, want %v with %q", err, tt.is, tt.msg)
			}
		})
	}
	if _, err := s.CACert(t.Context(), "cke/ca-nope"); !errors.Is(err, ckevault.ErrUnknownCA) {
		t.Errorf("CACert of an unknown CA: %v", err)
	}
}
