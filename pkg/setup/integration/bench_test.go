package integration

import (
	"context"
	"testing"
)

// BenchmarkSetup times neco setup of three simulated boot servers (real
// etcd and Vault processes on one host), from the start to the last server
// done. Run:
//
//	make etcd vault && PATH=$PWD/bin:$PATH go test -run '^$' -bench Setup -benchtime 3x ./pkg/setup/integration/
func BenchmarkSetup(b *testing.B) {
	prepare(b)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		cl := newCluster(b, 3)
		b.StartTimer()
		took := cl.setupAll(context.Background(), 0, 1, 2)
		b.StopTimer()
		b.ReportMetric(took.Seconds(), "s/setup")
		cl.killAll()
	}
}
