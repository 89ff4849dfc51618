package status

import (
	"context"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

func TestEtcd(t *testing.T) {
	ctx := context.Background()
	client := etcdtest.Client(t)
	st := Etcd(ctx, client, 5*time.Second)
	if !st.Reachable || len(st.Members) != 1 || !st.Members[0].Healthy || st.Members[0].Address != "127.0.0.1" || !st.Healthy() {
		t.Fatalf("status = %+v", st)
	}

	// A learner added but never started: not healthy, no name, and no
	// vote, so the cluster stays healthy.
	resp, err := client.MemberAddAsLearner(ctx, []string{"http://10.255.0.1:2380"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.MemberRemove(context.Background(), resp.Member.ID) })
	st = Etcd(ctx, client, 5*time.Second)
	if len(st.Members) != 2 || !st.Healthy() {
		t.Fatalf("status = %+v", st)
	}
	m := st.Member("10.255.0.1")
	if m == nil || m.Name != "" || !m.Learner || m.Healthy {
		t.Errorf("learner = %+v", m)
	}
	if v, h := st.Voters(); v != 1 || h != 1 {
		t.Errorf("voters = %d, healthy = %d", v, h)
	}
}
