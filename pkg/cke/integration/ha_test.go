package integration

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// probeScript asks the API for /readyz through the node-local balancer
// every 200 ms for the given seconds, with the kubelet's certificate (any
// authenticated user may read /readyz), and prints "ok failed".
const probeScript = `end=$(( $(date +%%s) + %d )); ok=0; bad=0
while [ $(date +%%s) -lt $end ]; do
  if curl -fsS --max-time 2 --cacert /etc/cke/kubelet/ca.crt --cert /etc/cke/kubelet/client.crt --key /etc/cke/kubelet/client.key \
       https://127.0.0.1:16443/readyz >/dev/null 2>&1; then ok=$((ok+1)); else bad=$((bad+1)); fi
  sleep 0.2
done
echo $ok $bad`

// probe runs probeScript on machine i in the background; the result
// arrives on the channel.
func (d *dc) probe(i int, seconds int) <-chan [2]int {
	out := make(chan [2]int, 1)
	go func() {
		res, err := d.node(i, "sh", "-c", fmt.Sprintf(probeScript, seconds))
		var r [2]int
		if f := strings.Fields(res); err == nil && len(f) == 2 {
			r[0], _ = strconv.Atoi(f[0])
			r[1], _ = strconv.Atoi(f[1])
		} else {
			r[1] = -1
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
	took := d.waitReady(5*time.Minute, 0, 1, 2, 3)
	r := <-probe
	t.Logf("rolling restart of 3 API servers in %s; /readyz through rivers: %d ok, %d failed", took.Round(time.Second), r[0], r[1])
	if r[1] != 0 {
		t.Errorf("%d failed requests through the node-local balancer during the rolling restart", r[1])
	}
	if n := strings.Count(d.mustCkecli("history", "-n", "20"), "start-service kube-apiserver on"); n < 3 {
		t.Errorf("%d API server restarts in the history, want 3 (one at a time)", n)
	}

	// Certificates with a third of their 4 minutes left are renewed: wait
	// until every API server and etcd member got new ones, probing all the
	// while.
	wait := time.Until(issued.Add(4*time.Minute - 4*time.Minute/3))
	probe = d.probe(3, int((wait + 100*time.Second).Seconds()))
	d.eventually(wait+3*time.Minute, "certificates renewed", func() error {
		h := d.mustCkecli("history", "-n", "60")
		for _, s := range []string{"kube-apiserver", "etcd", "kubelet"} {
			if !strings.Contains(h, "start-service "+s) || !strings.Contains(h, "certificate expires") {
				return fmt.Errorf("%s not renewed yet", s)
			}
		}
		return nil
	})
	d.waitReady(3*time.Minute, 0, 1, 2, 3)
	r = <-probe
	t.Logf("certificate renewal: /readyz through rivers: %d ok, %d failed", r[0], r[1])
	if r[1] != 0 {
		t.Errorf("%d failed requests through the node-local balancer during certificate renewal", r[1])
	}
}
