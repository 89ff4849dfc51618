package pki

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSignAndCheck(t *testing.T) {
	ca, err := NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewCA("other CA", time.Hour)
	key, _ := NewKey()
	csrPEM, err := NewCSR(key, "ignored")
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, err := ca.Sign(csr, "boot-0", []string{"10.69.0.3", "boot-0"}, ServerAuth|ClientAuth, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expired, _ := ca.Sign(csr, "root", nil, ClientAuth, -time.Minute)

	c, err := CheckFile(write("good.crt", good), ca.Cert, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject.CommonName != "boot-0" || len(c.IPAddresses) != 1 || len(c.DNSNames) != 1 {
		t.Errorf("the CA, not the CSR, decides the subject: %v %v %v", c.Subject, c.IPAddresses, c.DNSNames)
	}
	if !c.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("a certificate outlives its CA: %v > %v", c.NotAfter, ca.Cert.NotAfter)
	}

	for _, tt := range []struct {
		name, file string
		issuer     *CA
		want       string
	}{
		{"expired", write("expired.crt", expired), ca, "expired at"},
		{"other CA", write("good2.crt", good), other, "was not issued by"},
		{"garbage", write("garbage.crt", []byte("junk")), ca, "no PEM certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CheckFile(tt.file, tt.issuer.Cert, time.Now())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}

	// Round trip of a CA through PEM, and a mismatched key.
	kp, _ := ca.KeyPEM()
	if _, err := ParseCA(ca.CertPEM(), kp); err != nil {
		t.Fatal(err)
	}
	okp, _ := other.KeyPEM()
	if _, err := ParseCA(ca.CertPEM(), okp); err == nil {
		t.Fatal("a CA with another CA's key was accepted")
	}
	fi, _ := os.Stat(filepath.Join(dir, "good.crt"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
}

func FuzzParseCSR(f *testing.F) {
	key, _ := NewKey()
	csr, _ := NewCSR(key, "x")
	f.Add(csr)
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ParseCSR(data)  //nolint:errcheck
		ParseKey(data)  //nolint:errcheck
		ParseCert(data) //nolint:errcheck
	})
}

func TestIssue(t *testing.T) {
	ca, err := NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue("boot-0", []string{"127.0.0.1", "localhost"}, ServerAuth, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatalf("the key does not match the certificate: %v", err)
	}
	cert, err := ParseCert(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
		t.Errorf("not a server certificate of the CA for localhost: %v", err)
	}
	if cert.Subject.CommonName != "boot-0" || len(cert.IPAddresses) != 1 {
		t.Errorf("subject %q, IPs %v", cert.Subject.CommonName, cert.IPAddresses)
	}
}
