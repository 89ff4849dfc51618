package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/cke/decide"
	"github.com/openneco/neco/pkg/cke/kubeapi"
	"github.com/openneco/neco/pkg/cke/op"
	"github.com/openneco/neco/pkg/cke/resources"
	"github.com/openneco/neco/pkg/cke/status"
	"github.com/openneco/neco/pkg/cke/storage"
	"github.com/openneco/neco/pkg/cke/units"
)

// nodeExec sends each node's commands through the SSH pool of its user.
type nodeExec struct {
	ld      *leader
	cluster *cke.Cluster
}

func (n nodeExec) pool(addr string) status.NodeExec { return n.ld.pool(userOf(n.cluster, addr)) }

func (n nodeExec) Run(ctx context.Context, addr, cmd string, stdin io.Reader) ([]byte, error) {
	return n.pool(addr).Run(ctx, addr, cmd, stdin)
}

func (n nodeExec) WriteFile(ctx context.Context, addr, path string, data []byte, mode os.FileMode) error {
	return n.pool(addr).WriteFile(ctx, addr, path, data, mode)
}

func (n nodeExec) Install(ctx context.Context, addr, path string, src io.Reader, size int64, sha string, progress func(done, total int64)) error {
	return n.pool(addr).Install(ctx, addr, path, src, size, sha, progress)
}

// reconcile makes one decision and runs its operations; it reports
// whether it ran any (the caller then decides again at once).
func (ld *leader) reconcile(ctx context.Context) (bool, error) {
	cfg, err := ld.storage.ReadConfig(ctx)
	if err != nil {
		return false, err
	}
	c := cfg.Cluster
	if c == nil {
		did, report, err := ld.integrateSabakan(ctx, cfg)
		ld.putStatus(ctx, ld.l, &storage.Status{Waiting: "no cluster.yml: set one with ckecli cluster set or enable the sabakan integration", Sabakan: report})
		return did, err
	}
	if err := errors.Join(c.Validate(), cfg.Constraints.Check(c), ld.cfg.Artifacts.Supports(c)); err != nil {
		// Stored before a constraint changed, or by hand: refuse to act
		// on it; the sabakan integration may generate a good one.
		did, report, ierr := ld.integrateSabakan(ctx, cfg)
		ld.putStatus(ctx, ld.l, &storage.Status{Error: err.Error(), Sabakan: report})
		return did, ierr
	}

	// Remember every node before touching it, so that a node that leaves
	// cluster.yml is cleaned up even after a change of leader.
	addrs := cke.Addresses(c.Nodes)
	if managed := union(cfg.Managed, addrs); !slices.Equal(managed, union(cfg.Managed, nil)) {
		if err := ld.storage.SetManaged(ctx, ld.l, managed); err != nil {
			return false, err
		}
		cfg.Managed = managed
	}
	var former []string
	for _, a := range cfg.Managed {
		if c.Node(a) == nil {
			former = append(former, a)
		}
	}

	exec := nodeExec{ld: ld, cluster: c}
	snap := &decide.Snapshot{
		Cluster: c, Former: former, Now: time.Now(), RenewBefore: ld.cfg.CertTTL / 3,
		Nodes: status.Nodes(ctx, exec, append(slices.Clone(addrs), former...), ld.cfg.NodeTimeout),
	}
	inputs := units.Inputs{Artifacts: ld.cfg.Artifacts, SecretsFingerprint: ld.secrets.fingerprint}
	snap.Want = units.Hashes(c, inputs)
	wanted := resources.All(c, cfg.Resources)
	snap.WantResources = map[string]string{}
	for k, m := range wanted {
		snap.WantResources[k] = op.ResourceHash(m)
	}

	env := &op.Env{Cluster: c, Inputs: inputs, Nodes: exec, Certs: issuer{ld.vault}, Secrets: ld.secrets.files,
		Resources: wanted, CertTTL: ld.cfg.CertTTL, Log: slog.Default()}
	// The clients reach the control planes of cluster.yml and whichever
	// other nodes still run etcd or an API server (a control plane that is
	// being moved away); they connect lazily, so operations can use them
	// once they have started etcd or an API server. Status is asked only
	// when one runs.
	etcdEps := serving(snap.Nodes, c, cke.Etcd)
	ec, err := ld.etcdClient(ctx, etcdEps)
	if err != nil {
		return false, err
	}
	defer ec.Close()
	env.Etcd = ec
	if anyRunning(snap.Nodes, etcdEps, cke.Etcd) {
		snap.Etcd = status.Etcd(ctx, ec, 5*time.Second)
	}
	apiEps := serving(snap.Nodes, c, cke.APIServer)
	k, err := ld.kubeClient(ctx, apiEps)
	if err != nil {
		return false, err
	}
	defer k.Close()
	env.Kube = k
	if anyRunning(snap.Nodes, apiEps, cke.APIServer) {
		snap.Kube = kubeStatus(ctx, k)
		env.Applied = snap.Kube.Resources
	}

	res := decide.DecideOps(snap)
	ld.metrics.setPhase(res.Phase)
	reach := 0
	reachable := map[string]bool{}
	for a, st := range snap.Nodes {
		reachable[a] = st.Reachable
		if st.Reachable {
			reach++
		}
	}
	ld.metrics.nodes.WithLabelValues("true").Set(float64(reach))
	ld.metrics.nodes.WithLabelValues("false").Set(float64(len(snap.Nodes) - reach))
	if len(res.Ops) == 0 {
		// Nothing to do: the cluster is as declared (or waits for
		// something only time or an operator mends). Now the sabakan
		// integration may change the declaration.
		did, report, err := ld.integrateSabakan(ctx, cfg)
		ld.putStatus(ctx, ld.l, &storage.Status{Phase: res.Phase, Waiting: res.Waiting, Nodes: reachable, Sabakan: report})
		return did, err
	}
	ld.putStatus(ctx, ld.l, &storage.Status{Phase: res.Phase, Ops: res.Ops, Waiting: res.Waiting, Nodes: reachable})
	for _, o := range res.Ops {
		if err := ld.run(ctx, env, res.Phase, o); err != nil {
			return true, err
		}
		if o.Kind == decide.ForgetNodes {
			rest := slices.DeleteFunc(slices.Clone(cfg.Managed), func(a string) bool { return slices.Contains(o.Nodes, a) })
			if err := ld.storage.SetManaged(ctx, ld.l, rest); err != nil {
				return true, err
			}
		}
	}
	return true, nil
}

// serving returns the control planes and, after them, the other nodes
// where s runs.
func serving(nodes map[string]*cke.NodeStatus, c *cke.Cluster, s cke.Service) []string {
	out := cke.Addresses(c.ControlPlanes())
	for _, a := range slices.Sorted(maps.Keys(nodes)) {
		if st := nodes[a]; st.Reachable && st.Services[s].Running && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func anyRunning(nodes map[string]*cke.NodeStatus, addrs []string, s cke.Service) bool {
	return slices.ContainsFunc(addrs, func(a string) bool {
		st := nodes[a]
		return st != nil && st.Reachable && st.Services[s].Running
	})
}

// kubeClient reaches the API servers with the engine's admin certificate.
func (ld *leader) kubeClient(ctx context.Context, cps []string) (*kube, error) {
	cert, err := ld.ownCert(ctx, "kubernetes", units.CertSpec{CA: units.CAKubernetes, Role: units.RoleAdmin, CommonName: "cke"})
	if err != nil {
		return nil, err
	}
	ca, err := ld.vault.CACert(ctx, units.CAKubernetes)
	if err != nil {
		return nil, err
	}
	servers := make([]string, len(cps))
	for i, a := range cps {
		servers[i] = "https://" + a + ":" + strconv.Itoa(units.APIServerPort)
	}
	return newKube(kubeapi.Config{Servers: servers, CACert: ca, ClientCert: cert.pem, ClientKey: cert.key, Timeout: 10 * time.Second})
}

// kubeStatus reads what the engine maintains in Kubernetes; an API that
// does not answer leaves it unreachable.
func kubeStatus(ctx context.Context, k *kube) cke.KubeStatus {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	nodes, err := k.Nodes(ctx)
	if err != nil {
		return cke.KubeStatus{}
	}
	st := cke.KubeStatus{Reachable: true, Nodes: nodes}
	if st.Endpoints, err = k.Endpoints(ctx, "default", "kubernetes"); err != nil && !kubeapi.IsNotFound(err) {
		return cke.KubeStatus{}
	}
	if st.Resources, err = k.Applied(ctx); err != nil {
		return cke.KubeStatus{}
	}
	return st
}

// run carries out one operation, recording it and every step.
func (ld *leader) run(ctx context.Context, env *op.Env, phase decide.Phase, o decide.Op) error {
	rec := &storage.Record{Status: storage.RecordRunning, Phase: phase, Op: o, Leader: ld.cfg.Name, Start: time.Now().UTC()}
	if err := ld.storage.NewRecord(ctx, ld.l, rec); err != nil {
		return err
	}
	slog.Info("cke: operation", "id", rec.ID, "op", o.String())
	finish := func(err error) error {
		rec.End = time.Now().UTC()
		rec.Status = storage.RecordCompleted
		if err != nil {
			rec.Status, rec.Error = storage.RecordFailed, err.Error()
		}
		ld.metrics.operations.WithLabelValues(string(o.Kind), string(rec.Status)).Inc()
		if uerr := ld.storage.UpdateRecord(context.WithoutCancel(ctx), ld.l, rec); uerr != nil {
			return errors.Join(err, uerr)
		}
		if err != nil {
			return fmt.Errorf("operation %d (%s): %w", rec.ID, o.Kind, err)
		}
		return nil
	}
	steps, err := env.Steps(o)
	if err != nil {
		return finish(err)
	}
	for _, s := range steps {
		rec.Steps = append(rec.Steps, storage.Step{Name: s.Name, Start: time.Now().UTC()})
		if err := ld.storage.UpdateRecord(ctx, ld.l, rec); err != nil {
			return err
		}
		err := s.Run(ctx)
		last := &rec.Steps[len(rec.Steps)-1]
		last.End = time.Now().UTC()
		if err != nil {
			last.Error = err.Error()
			return finish(fmt.Errorf("%s: %w", s.Name, err))
		}
	}
	return finish(nil)
}
