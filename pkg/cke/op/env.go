// Package op carries out the operations DecideOps chooses, as named steps
// that the server records one by one. Work on several nodes within a step
// runs in parallel; a step fails when any node fails, and the operation
// stops there (DecideOps decides again from what the nodes then run, so a
// half-done operation is finished or undone by the next decision, not by
// this package).
package op

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/cke/units"
)

// NodeExec runs commands and writes files on nodes (nodeexec.Pool).
type NodeExec interface {
	Run(ctx context.Context, addr, cmd string, stdin io.Reader) ([]byte, error)
	WriteFile(ctx context.Context, addr, path string, data []byte, mode os.FileMode) error
	Install(ctx context.Context, addr, path string, src io.Reader, size int64, sha256hex string, progress func(done, total int64)) error
}

// Issuer issues certificates from Vault (ckevault.Session).
type Issuer interface {
	Issue(ctx context.Context, spec units.CertSpec, ttl time.Duration) (cert, key []byte, notAfter time.Time, err error)
	CACert(ctx context.Context, ca string) ([]byte, error)
}

// Kube is what operations do through the Kubernetes API (kubeapi.Client).
type Kube interface {
	Apply(ctx context.Context, manifest []byte) error
	SetEndpoints(ctx context.Context, namespace, name string, addrs []string, port int) error
	Nodes(ctx context.Context) ([]cke.KubeNode, error)
	PatchNodeMetadata(ctx context.Context, name string, labels, annotations map[string]string, taints []cke.Taint) error
	DeleteNode(ctx context.Context, name string) error
	// ReadyzAt asks the API server on addr whether it is ready.
	ReadyzAt(ctx context.Context, addr string) error
	// Applied returns and SetApplied records the hashes resources were
	// last applied with (cke.KubeStatus.Resources).
	SetApplied(ctx context.Context, applied map[string]string) error
}

// Env is what operations work with.
type Env struct {
	Cluster *cke.Cluster
	Inputs  units.Inputs
	Nodes   NodeExec
	Certs   Issuer
	// Secrets are the contents of engine secrets by units.Secret* name.
	Secrets map[string][]byte
	// Etcd is a client of the Kubernetes etcd (nil before it exists).
	Etcd *clientv3.Client
	// Kube reaches the API servers (nil before any runs).
	Kube Kube
	// Resources are the wanted resources by key, and Applied the hashes
	// last applied (from cke.KubeStatus).
	Resources map[string][]byte
	Applied   map[string]string
	// CertTTL is the lifetime of issued certificates.
	CertTTL time.Duration
	// ReadyTimeout bounds the wait for a started service.
	ReadyTimeout time.Duration
	Log          *slog.Logger
}

// Step is one named step of an operation.
type Step struct {
	Name string
	Run  func(ctx context.Context) error
}

// eachNode runs f for every address concurrently and joins the errors,
// each prefixed with its node.
func eachNode(ctx context.Context, addrs []string, f func(ctx context.Context, addr string) error) error {
	errs := make([]error, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx, a); err != nil {
				errs[i] = fmt.Errorf("%s: %w", a, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// stopPolling is an error that ends poll at once.
type stopPolling struct{ error }

func (s stopPolling) Unwrap() error { return s.error }

// poll calls f every interval until it succeeds, returns a stopPolling
// error, or timeout passes; the last error is returned.
func poll(ctx context.Context, timeout, interval time.Duration, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		var stop stopPolling
		if errors.As(err, &stop) {
			return stop.error
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up after %s: %w", timeout, err)
		case <-time.After(interval):
		}
	}
}

func (e *Env) readyTimeout() time.Duration {
	if e.ReadyTimeout > 0 {
		return e.ReadyTimeout
	}
	return 3 * time.Minute
}

func (e *Env) log() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.Default()
}
