package integration

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// probeScript asks the API for /version through the node-local balancer
// every 200 ms for the given seconds, with the kubelet's certificate (any
// authenticated user may read it), and prints "ok slow failed streak":
// answers, single requests that timed out after 2 s (curl's exit 28: on
// this 2-core machine, busy with the other tests, one request may be that
// slow), every other failure (refused, reset, an error status: the
// balancer had no API server to give), and the longest run of
// consecutive failures of either kind. (Not /readyz: a stopping API
// server fails it on purpose while it still serves.)
const probeScript = `end=$(( $(date +%%s) + %d )); ok=0; slow=0; bad=0; run=0; streak=0
while [ $(date +%%s) -lt $end ]; do
  curl -fsS --max-time 2 --cacert /root/probe/ca.crt --cert /root/probe/client.crt --key /root/probe/client.key \
       https://127.0.0.1:16443/version >/dev/null 2>&1
  case $? in
  0) ok=$((ok+1)); run=0 ;;
  28) slow=$((slow+1)); run=$((run+1)) ;;
  *) bad=$((bad+1)); run=$((run+1)) ;;
  esac
  [ $run -gt $streak ] && streak=$run
  sleep 0.2
done
echo $ok $slow $bad $streak`

// probeResult is what probeScript counted.
type probeResult struct{ ok, slow, failed, streak int }

func (r probeResult) String() string {
	return fmt.Sprintf("%d ok, %d slow (timed out after 2 s), %d failed, at most %d in a row", r.ok, r.slow, r.failed, r.streak)
}

// available checks that the API never went away: no request failed other
// than by its time running out, and no two requests in a row went
// unanswered.
func (r probeResult) available() bool { return r.failed == 0 && r.streak <= 1 }

// probe runs probeScript on machine i in the background; the result
// arrives on the channel. It authenticates with a certificate of its own
// (the components' are renewed under its feet).
func (d *dc) probe(i int, seconds int) <-chan probeResult {
	var kc struct {
		Clusters []struct {
			Cluster struct {
				CA []byte `json:"certificate-authority-data"`
			}
		}
		Users []struct {
			User struct {
				Cert []byte `json:"client-certificate-data"`
				Key  []byte `json:"client-key-data"`
			}
		}
	}
	if err := yaml.Unmarshal([]byte(d.mustCkecli("kubernetes", "issue", "--ttl=1h")), &kc); err != nil || len(kc.Users) == 0 {
		d.t.Fatalf("kubeconfig: %v", err)
	}
	for name, data := range map[string][]byte{"ca.crt": kc.Clusters[0].Cluster.CA, "client.crt": kc.Users[0].User.Cert, "client.key": kc.Users[0].User.Key} {
		d.mustNode(i, "sh", "-c", "mkdir -p /root/probe && echo '"+base64.StdEncoding.EncodeToString(data)+"' | base64 -d > /root/probe/"+name)
	}
	out := make(chan probeResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds+60)*time.Second)
		defer cancel()
		res, err := d.in.Run(ctx, nodeName(i), "sh", "-c", fmt.Sprintf(probeScript, seconds))
		var r probeResult
		if f := strings.Fields(res); err == nil && len(f) == 4 {
			r.ok, _ = strconv.Atoi(f[0])
			r.slow, _ = strconv.Atoi(f[1])
			r.failed, _ = strconv.Atoi(f[2])
			r.streak, _ = strconv.Atoi(f[3])
		} else {
			r.failed = -1
			d.t.Errorf("probe on %s: %v %q", nodeName(i), err, res)
		}
		out <- r
	}()
	return out
}

// TestHighAvailability runs three control planes and checks, through a
// worker's node-local balancer, that the API stays available while the
// engine restarts every API server one at a time, first for a new flag,
// then to renew the certificates it issued with a short lifetime.
func TestHighAvailability(t *testing.T) {
	d := newDC(t, 4)
	images := imagesTar(t)
	d.engineWith("boot-a", 10180, "--cert-ttl=4m")
	d.mustCkecli("vault", "init")
	d.prepareNodes(images)
	d.mustCkecli("constraints", "set", "control-plane-count", "3")
	start := time.Now()
	d.setCluster(clusterYAML(4, 0, 1, 2))
	d.waitReady(8*time.Minute, 0, 1, 2, 3)
	issued := time.Now()
	t.Logf("3 control planes and a worker Ready in %s", time.Since(start).Round(time.Second))

	// A new API server flag: a rolling restart.
	probe := d.probe(3, 60)
	time.Sleep(2 * time.Second)
	d.setCluster(strings.Replace(clusterYAML(4, 0, 1, 2), "nodes:", "options:\n  kube-api: {extra_args: [--v=1]}\nnodes:", 1))
	took := d.eventually(5*time.Minute, "3 API servers restarted one at a time", func() error {
		if n := d.restarts("kube-apiserver", "parameters changed"); n < 3 {
			return fmt.Errorf("%d restarted", n)
		}
		return nil
	})
	d.waitReady(3*time.Minute, 0, 1, 2, 3)
	r := <-probe
	t.Logf("rolling restart of 3 API servers in %s; /version through rivers: %s", took.Round(time.Second), r)
	if !r.available() {
		t.Errorf("the API through the node-local balancer was not available throughout the rolling restart: %s", r)
	}

	// An etcd member stopped is started again by the engine; a member
	// killed is restarted by systemd.
	// The engine may restart it while it is still stopping (it decides
	// every 5 s): systemd then cancels the stop job, which is fine.
	if _, err := d.node(2, "systemctl", "stop", "cke-etcd.service"); err != nil && !strings.Contains(err.Error(), "canceled") {
		t.Fatal(err)
	}
	took = d.eventually(2*time.Minute, "etcd running again on n2", func() error {
		out, _ := d.node(2, "systemctl", "is-active", "cke-etcd.service")
		if strings.TrimSpace(out) != "active" {
			return fmt.Errorf("cke-etcd is %s", strings.TrimSpace(out))
		}
		return nil
	})
	t.Logf("a stopped etcd member was started again in %s", took.Round(time.Second))
	d.mustNode(1, "pkill", "-9", "-f", "/opt/cke/bin/etcd-")
	d.waitReady(3*time.Minute, 0, 1, 2, 3)

	// Certificates with a third of their 4 minutes left are renewed: wait
	// until every API server and etcd member got new ones, probing all the
	// while.
	wait := time.Until(issued.Add(4*time.Minute - 4*time.Minute/3))
	probe = d.probe(3, int((wait + 100*time.Second).Seconds()))
	d.eventually(wait+6*time.Minute, "certificates renewed", func() error {
		// One API server and one etcd member at a time; the kubelets together.
		api, etcd, kubelet := d.restarts("kube-apiserver", "certificate expires"), d.restarts("etcd", "certificate expires"),
			d.restarts("kubelet", "certificate expires")
		if api < 3 || etcd < 3 || kubelet < 1 {
			return fmt.Errorf("renewals so far: %d API servers, %d etcd, %d kubelet operations", api, etcd, kubelet)
		}
		return nil
	})
	d.waitReady(3*time.Minute, 0, 1, 2, 3)
	r = <-probe
	t.Logf("certificate renewal: /version through rivers: %s", r)
	if !r.available() {
		t.Errorf("the API through the node-local balancer was not available throughout certificate renewal: %s", r)
	}
}

// restarts counts the completed start-service operations of service
// whose reason contains why.
func (d *dc) restarts(service, why string) int {
	var recs []struct {
		Status string
		Op     struct{ Kind, Service, Reason string }
	}
	if err := json.Unmarshal([]byte(d.mustCkecli("history", "-n", "200", "-o", "json")), &recs); err != nil {
		d.t.Fatal(err)
	}
	n := 0
	for _, r := range recs {
		if r.Status == "completed" && r.Op.Kind == "start-service" && r.Op.Service == service && strings.Contains(r.Op.Reason, why) {
			n++
		}
	}
	return n
}
