package ckecli

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/spf13/cobra"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/cke/ckevault"
	"github.com/openneco/neco/pkg/cke/kubeapi"
	"github.com/openneco/neco/pkg/cke/storage"
	"github.com/openneco/neco/pkg/cke/units"
	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/fileutil"
)

// defaultIssueTTL is the lifetime of certificates issued to operators
// unless --ttl says otherwise.
const defaultIssueTTL = 2 * time.Hour

func newKubernetesCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kubernetes",
		Short: "access the Kubernetes cluster",
	}
	var ttl time.Duration
	var server, userName string
	issue := &cobra.Command{
		Use:   "issue",
		Short: "print a kubeconfig with a short-lived administrator certificate",
		Long: `issue prints a kubeconfig for the cluster with a new client certificate of an
administrator (O=system:masters, common name admin:USER) issued from
` + ckevault.CAKubernetes + ` with the operator's Vault token. The certificate cannot be
revoked: keep --ttl short (at most ` + shortDuration(ckevault.AdminCertMaxTTL) + `).

The API server is --server, by default https://ADDRESS:` + strconv.Itoa(units.APIServerPort) + ` with the address of
the first control plane of cluster.yml. USER is --user, by default the
operator's login name (SUDO_USER under sudo).`,
		Example: `  ckecli kubernetes issue > ~/.kube/config
  ckecli kubernetes issue --ttl 15m --server https://10.69.0.4:6443 > /tmp/kubeconfig`,
		Args: cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkTTL(ttl, ckevault.AdminCertMaxTTL); err != nil {
				return err
			}
			if userName == "" {
				var err error
				if userName, err = loginName(); err != nil {
					return err
				}
			}
			ctx := cmd.Context()
			var vc *vault.Client
			err := o.withStorage(ctx, func(ctx context.Context, st *storage.Storage) error {
				if server == "" {
					c, err := st.GetCluster(ctx)
					if errors.Is(err, cke.ErrNotFound) {
						return fmt.Errorf("no cluster.yml to find the API server in (give --server): %w", cke.ErrNotFound)
					}
					if err != nil {
						return err
					}
					cps := c.ControlPlanes()
					if len(cps) == 0 {
						return fmt.Errorf("cluster.yml has no control plane (give --server): %w", cke.ErrNotFound)
					}
					server = "https://" + net.JoinHostPort(cps[0].Address, strconv.Itoa(units.APIServerPort))
				}
				var err error
				vc, err = o.operatorVault(ctx, st)
				return err
			})
			if err != nil {
				return err
			}
			cn := "admin:" + userName
			cert, err := issueCert(ctx, vc, ckevault.CAKubernetes, ckevault.RoleAdmin, cn, ttl)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(kubeapi.Kubeconfig(server, cert.caPEM, cert.certPEM, cert.keyPEM, cn))
			return err
		},
	}
	issue.Flags().DurationVar(&ttl, "ttl", defaultIssueTTL, "lifetime of the certificate (at most "+shortDuration(ckevault.AdminCertMaxTTL)+")")
	issue.Flags().StringVar(&server, "server", "", "URL of the API server (default: the first control plane of cluster.yml)")
	issue.Flags().StringVar(&userName, "user", "", "who the certificate is for: its common name is admin:USER (default: your login name)")
	cmd.AddCommand(issue)
	return cmd
}

// loginName is the operator's login name, the one behind sudo.
func loginName() (string, error) {
	if u := os.Getenv("SUDO_USER"); u != "" {
		return u, nil
	}
	u, err := user.Current()
	if err != nil {
		return "", fmt.Errorf("who are you? %w (give --user)", err)
	}
	return u.Username, nil
}

func checkTTL(ttl, max time.Duration) error {
	if ttl < time.Minute || ttl > max {
		return cli.UsageError("--ttl %s: between 1m and %s", shortDuration(ttl), shortDuration(max))
	}
	return nil
}

// shortDuration is d without zero minutes and seconds: 720h, 1h30m.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func newEtcdCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "etcd",
		Short: "access the Kubernetes etcd",
		Long: `The Kubernetes etcd runs on the control planes (port ` + strconv.Itoa(units.EtcdClientPort) + `) and accepts the
clients that present a certificate of ` + ckevault.CAEtcdClient + `. It runs without etcd
users and roles: such a certificate can read and write everything, so
"etcd user-add" is not offered; the common name only says who the client is.

No backup command either: it would need this machine to reach the control
planes' etcd. Take one with a certificate from etcd issue:

  ckecli etcd issue backup --output-dir /tmp/etcd
  etcdctl --endpoints https://CONTROL-PLANE:2379 --cacert /tmp/etcd/ca.crt \
    --cert /tmp/etcd/backup.crt --key /tmp/etcd/backup.key snapshot save etcd.db`,
	}
	var ttl time.Duration
	var dir string
	var out cli.Output
	issue := &cobra.Command{
		Use:   "issue NAME",
		Short: "issue a client certificate of the Kubernetes etcd",
		Long: `issue issues a client certificate of the Kubernetes etcd with the common name
NAME from ` + ckevault.CAEtcdClient + `, with the operator's Vault token. It prints the
certificate, its key and the CA certificate that verifies the etcd servers
(` + ckevault.CAServer + `) as JSON (or YAML), or with --output-dir writes them to
NAME.crt, NAME.key and ca.crt there. The certificate gives full access and
cannot be revoked: keep --ttl short (at most ` + shortDuration(ckevault.AdminCertMaxTTL) + `).`,
		Example: `  ckecli etcd issue alice --ttl 30m | jq -r .cert > alice.crt
  ckecli etcd issue backup --output-dir /tmp/etcd`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if name == "" || strings.ContainsAny(name, "/\\ \t\n") || name == "ca" || name == "." || name == ".." {
				return cli.UsageError("NAME %q: a user name without '/', blanks, and not \"ca\"", name)
			}
			if err := checkTTL(ttl, ckevault.AdminCertMaxTTL); err != nil {
				return err
			}
			ctx := cmd.Context()
			var vc *vault.Client
			var serverCA []byte
			err := o.withStorage(ctx, func(ctx context.Context, st *storage.Storage) error {
				var err error
				serverCA, err = st.GetCA(ctx, CAName(ckevault.CAServer))
				if errors.Is(err, cke.ErrNotFound) {
					return fmt.Errorf("the CA certificate of the etcd servers is not in etcd (run ckecli vault init): %w", cke.ErrNotFound)
				}
				if err != nil {
					return err
				}
				vc, err = o.operatorVault(ctx, st)
				return err
			})
			if err != nil {
				return err
			}
			cert, err := issueCert(ctx, vc, ckevault.CAEtcdClient, ckevault.RoleClient, name, ttl)
			if err != nil {
				return err
			}
			if dir != "" {
				if err := os.MkdirAll(dir, 0o700); err != nil {
					return err
				}
				for _, f := range []struct {
					name string
					data []byte
					mode os.FileMode
				}{
					{name + ".crt", cert.certPEM, 0o644}, {name + ".key", cert.keyPEM, 0o600}, {"ca.crt", serverCA, 0o644},
				} {
					if err := fileutil.WriteAtomic(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
						return err
					}
				}
				return nil
			}
			return printData(cmd.OutOrStdout(), out, struct {
				Cert     string    `json:"cert"`
				Key      string    `json:"key"`
				CACert   string    `json:"ca_cert"`
				NotAfter time.Time `json:"not_after"`
			}{string(cert.certPEM), string(cert.keyPEM), string(serverCA), cert.notAfter}, nil)
		},
	}
	issue.Flags().DurationVar(&ttl, "ttl", defaultIssueTTL, "lifetime of the certificate (at most "+shortDuration(ckevault.AdminCertMaxTTL)+")")
	issue.Flags().StringVar(&dir, "output-dir", "", "write NAME.crt, NAME.key (0600) and ca.crt into this directory instead of printing them")
	issue.MarkFlagDirname("output-dir")
	addOutputFlag(issue, &out, outJSON, outYAML)
	cmd.AddCommand(issue)
	return cmd
}

// issuedCert is a certificate issued to an operator.
type issuedCert struct {
	certPEM, keyPEM, caPEM []byte
	notAfter               time.Time
}

// issueCert issues a certificate with the operator's token from ca with
// role, which is written first if ca does not have it yet.
//
// ckevault.Session issues only as the engine (AppRole); an operator's
// token has no session, so this writes the role itself, with the
// parameters ckevault writes for the same RoleSpec (a test compares the
// two). It never overwrites a role that exists.
func issueCert(ctx context.Context, vc *vault.Client, ca string, role ckevault.RoleSpec, cn string, ttl time.Duration) (*issuedCert, error) {
	rolePath := ca + "/roles/" + role.Name
	sec, err := vc.Logical().ReadWithContext(ctx, rolePath)
	if err != nil {
		return nil, fmt.Errorf("read role %s: %w", rolePath, err)
	}
	if sec == nil {
		if _, err := vc.Logical().WriteWithContext(ctx, rolePath, ckevault.RoleData(role)); err != nil {
			return nil, fmt.Errorf("write role %s: %w", rolePath, err)
		}
	}
	path := ca + "/issue/" + role.Name
	sec, err = vc.Logical().WriteWithContext(ctx, path, map[string]any{
		"common_name":          cn,
		"ttl":                  fmt.Sprintf("%ds", int64(ttl/time.Second)),
		"exclude_cn_from_sans": true,
		"format":               "pem",
	})
	if err != nil {
		return nil, fmt.Errorf("issue %q from %s: %w", cn, path, err)
	}
	str := func(k string) string {
		if sec == nil {
			return ""
		}
		s, _ := sec.Data[k].(string)
		return s
	}
	cert, key, caCert := str("certificate"), str("private_key"), str("issuing_ca")
	block, _ := pem.Decode([]byte(cert))
	if block == nil || key == "" || caCert == "" {
		return nil, fmt.Errorf("issue %q from %s: vault answered no certificate, key or CA", cn, path)
	}
	parsed, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("issue %q from %s: %w", cn, path, err)
	}
	return &issuedCert{
		certPEM: []byte(cert + "\n"), keyPEM: []byte(key + "\n"), caPEM: []byte(caCert + "\n"),
		notAfter: parsed.NotAfter,
	}, nil
}
