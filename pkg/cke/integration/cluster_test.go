package integration

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// engine starts a cke daemon in the boot namespace.
func (d *dc) engine(name string, metricsPort int) { d.engineWith(name, metricsPort) }

func (d *dc) engineWith(name string, metricsPort int, extra ...string) {
	args := []string{d.bin["cke"], "--config=", "--etcd-endpoints=http://127.0.0.1:2379", "--name=" + name,
		"--kube-binary=" + d.bin["kube"], "--etcd-binary=" + d.bin["etcd"], "--interval=5s", "--session-ttl=10",
		fmt.Sprintf("--metrics=127.0.0.1:%d", metricsPort)}
	d.start("cke-"+name, append(args, extra...)...)
}

const agnhost = `apiVersion: apps/v1
kind: Deployment
metadata: {name: agnhost, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: agnhost}}
  template:
    metadata: {labels: {app: agnhost}}
    spec:
      containers:
      - name: agnhost
        image: registry.k8s.io/e2e-test-images/agnhost:2.66.1
        imagePullPolicy: Never
        args: [netexec, --http-port=8080]
`

type pod struct {
	Metadata struct{ Name string }
	Spec     struct{ NodeName string }
	Status   struct{ PodIP, Phase string }
}

// TestCluster builds a cluster with the engine from cluster.yml alone,
// runs a Deployment on it, then changes cluster.yml (a new worker, the
// control plane moved with the leading engine killed half-way) and breaks
// it (an API server killed and stopped), and checks that it converges
// each time.
func TestCluster(t *testing.T) {
	d := newDC(t, 4)
	images := imagesTar(t)
	d.engine("boot-a", 10180)
	d.engine("boot-b", 10181)
	d.mustCkecli("vault", "init")
	d.prepareNodes(images)

	// 1 control plane, 2 workers.
	start := time.Now()
	d.setCluster(clusterYAML(3, 0))
	took := d.waitReady(8*time.Minute, 0, 1, 2)
	t.Logf("cluster set → 3 nodes Ready and the engine done: %s", time.Since(start).Round(time.Second))
	_ = took

	// The engine labelled the nodes and keeps default/kubernetes.
	out, err := d.kubectl("get", "nodes", "-L", "test.openneco.io/index,node-role.kubernetes.io/control-plane")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out)
	if out, _ := d.kubectl("get", "endpoints", "kubernetes", "-o", "jsonpath={.subsets[0].addresses[*].ip}"); strings.TrimSpace(out) != nodeAddr(0) {
		t.Errorf("default/kubernetes endpoints = %q", out)
	}

	// A Deployment is scheduled and serves; logs and exec work.
	if _, err := d.bootRunIn([]byte(agnhost), d.bin["kubectl"], "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.kubectl("rollout", "status", "deployment/agnhost", "--timeout=3m"); err != nil {
		t.Fatal(err)
	}
	pods := d.pods("app=agnhost")
	for _, p := range pods {
		i := strings.TrimPrefix(p.Spec.NodeName, "n")
		var idx int
		fmt.Sscan(i, &idx)
		got := strings.TrimSpace(d.mustNode(idx, "curl", "-fsS", "--max-time", "5", "http://"+p.Status.PodIP+":8080/hostname"))
		if got != p.Metadata.Name {
			t.Errorf("pod %s on %s answered %q", p.Metadata.Name, p.Spec.NodeName, got)
		}
		if out, err := d.kubectl("exec", p.Metadata.Name, "--", "hostname"); err != nil || strings.TrimSpace(out) != p.Metadata.Name {
			t.Errorf("kubectl exec: %q, %v", out, err)
		}
		d.eventually(time.Minute, "kubectl logs", func() error {
			out, err := d.kubectl("logs", p.Metadata.Name)
			if err == nil && !strings.Contains(out, "netexec") && !strings.Contains(out, "Started") {
				return fmt.Errorf("logs: %q", out)
			}
			return err
		})
	}

	// The cluster DNS the engine deployed answers pods.
	if _, err := d.kubectl("-n", "kube-system", "rollout", "status", "deployment/cluster-dns", "--timeout=3m"); err != nil {
		t.Fatal(err)
	}
	d.eventually(time.Minute, "kubernetes.default resolves in a pod", func() error {
		out, err := d.kubectl("exec", pods[0].Metadata.Name, "--", "nslookup", "kubernetes.default.svc.cluster.local")
		if err == nil && !strings.Contains(out, "10.68.0.1") {
			err = fmt.Errorf("nslookup: %s", out)
		}
		return err
	})

	// A fourth machine joins as a worker.
	start = time.Now()
	d.setCluster(clusterYAML(4, 0))
	d.waitReady(5*time.Minute, 0, 1, 2, 3)
	t.Logf("a worker added in %s", time.Since(start).Round(time.Second))

	// An API server killed: systemd restarts it; stopped: the engine does.
	d.mustNode(0, "pkill", "-9", "-f", "/opt/cke/bin/kube-.* kube-apiserver")
	d.eventually(2*time.Minute, "API back after kill -9", func() error { _, err := d.kubectl("get", "--raw", "/readyz"); return err })
	d.waitReady(3*time.Minute, 0, 1, 2, 3) // and the engine idle: it may have restarted it too
	// The engine may still (re)start it after the kill: a stop whose job
	// that start cancels is tried again.
	d.eventually(time.Minute, "the API server stopped", func() error {
		_, err := d.node(0, "systemctl", "stop", "cke-kube-apiserver.service")
		return err
	})
	took = d.eventually(3*time.Minute, "the engine restarts a stopped API server", func() error {
		_, err := d.kubectl("get", "--raw", "/readyz")
		return err
	})
	t.Logf("a stopped API server was restarted by the engine in %s", took.Round(time.Second))

	// The control plane moves to n1 while the leading engine is killed
	// in the middle of an operation: the other engine finishes the job.
	before := d.leader()
	start = time.Now()
	d.setCluster(clusterYAML(4, 1))
	d.eventually(2*time.Minute, "an operation running", func() error {
		if d.runningRecord() {
			return nil
		}
		return fmt.Errorf("no running operation yet")
	})
	d.kill("cke-" + before)
	d.eventually(time.Minute, "another leader", func() error {
		if l := d.leader(); l == "" || l == before {
			return fmt.Errorf("leader %q", l)
		}
		return nil
	})
	if err := d.issueKubeconfigFor(1); err != nil {
		t.Fatal(err)
	}
	d.waitReady(8*time.Minute, 0, 1, 2, 3)
	t.Logf("the control plane moved in %s (leader %s killed half-way)", time.Since(start).Round(time.Second), before)
	if out, _ := d.node(0, "systemctl", "is-active", "cke-kube-apiserver.service", "cke-etcd.service"); slices.Contains(strings.Fields(out), "active") {
		t.Errorf("the old control plane still runs its API server or etcd: %q", out)
	}
	if out, _ := d.kubectl("get", "endpoints", "kubernetes", "-o", "jsonpath={.subsets[0].addresses[*].ip}"); strings.TrimSpace(out) != nodeAddr(1) {
		t.Errorf("default/kubernetes endpoints = %q", out)
	}
	hist := d.mustCkecli("history", "-n", "0", "-o", "json")
	if !strings.Contains(hist, `"cancelled"`) {
		t.Errorf("no cancelled record of the killed leader in the history")
	}
	// The Deployment still serves through the move.
	if _, err := d.kubectl("rollout", "status", "deployment/agnhost", "--timeout=2m"); err != nil {
		t.Error(err)
	}
}

func (d *dc) pods(selector string) []pod {
	d.t.Helper()
	out, err := d.kubectl("get", "pods", "-l", selector, "-o", "json")
	if err != nil {
		d.t.Fatal(err)
	}
	var list struct{ Items []pod }
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		d.t.Fatal(err)
	}
	return list.Items
}

func (d *dc) leader() string {
	out, err := d.ckecli("leader")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

func (d *dc) runningRecord() bool {
	out, err := d.ckecli("history", "-n", "3", "-o", "json")
	return err == nil && strings.Contains(out, `"running"`)
}

func (d *dc) issueKubeconfigFor(i int) error {
	out, err := d.ckecli("kubernetes", "issue", "--ttl=2h", "--server=https://"+nodeAddr(i)+":6443")
	if err != nil {
		return err
	}
	return writeFile(d.kube, out)
}
