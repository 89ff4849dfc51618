package integration

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkClusterUp measures, on a new data center each round, the time
// from `ckecli cluster set` (1 control plane, 2 workers) to every node
// Ready with the engine idle; then, over 30 s of idling, the mean duration
// of a reconciliation in which there was nothing to do (status of every
// node, etcd and the API, the decision) and the leading engine's CPU and
// memory. Run with -benchtime 3x for a median of 3.
func BenchmarkClusterUp(b *testing.B) {
	var ups, idles, cpus, rss []float64
	for range b.N {
		d := newDC(b, 3)
		images := imagesTar(b)
		d.engine("boot-a", 10180)
		d.mustCkecli("vault", "init")
		d.prepareNodes(images)
		start := time.Now()
		d.setCluster(clusterYAML(3, 0))
		d.waitReady(8*time.Minute, 0, 1, 2)
		ups = append(ups, time.Since(start).Seconds())

		sum0, n0 := d.reconcileMetrics()
		cpu0 := d.cpuSeconds("cke-boot-a")
		time.Sleep(30 * time.Second)
		sum1, n1 := d.reconcileMetrics()
		cpu1 := d.cpuSeconds("cke-boot-a")
		if n1 > n0 {
			idles = append(idles, (sum1-sum0)/(n1-n0))
		}
		cpus = append(cpus, (cpu1-cpu0)/30)
		rss = append(rss, d.rssMiB("cke-boot-a"))
		if st, err := d.status(); err != nil || st.Phase != "completed" {
			b.Fatalf("the engine did not stay idle: %+v %v", st, err)
		}
		d.close() // the host's inotify instances do not suffice for several at once
	}
	b.ReportMetric(median(ups), "s-to-ready")
	b.ReportMetric(median(idles)*1000, "ms/idle-reconcile")
	b.ReportMetric(median(cpus)*100, "%cpu-idle")
	b.ReportMetric(median(rss), "MiB-rss")
	b.Logf("cluster set → Ready: %v s; idle reconcile: %v s; idle CPU: %v cores; RSS: %v MiB", ups, idles, cpus, rss)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// reconcileMetrics reads the engine's reconciliation histogram.
func (d *dc) reconcileMetrics() (sum, count float64) {
	out, err := d.bootRun("curl", "-fsS", "http://127.0.0.1:10180/metrics")
	if err != nil {
		d.t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "cke_reconcile_duration_seconds_sum":
			sum = v
		case "cke_reconcile_duration_seconds_count":
			count = v
		}
	}
	return sum, count
}

// cpuSeconds is the CPU time a daemon started with start has used.
func (d *dc) cpuSeconds(name string) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.procs[name].Process.Pid))
	if err != nil {
		d.t.Fatal(err)
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

func (d *dc) rssMiB(name string) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.procs[name].Process.Pid))
	if err != nil {
		d.t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
