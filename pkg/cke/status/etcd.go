package status

import (
	"context"
	"net"
	"net/url"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/cke"
)

// Etcd asks the Kubernetes etcd for its members and asks each started
// member for its status (healthy: it answers and knows a leader), each
// request bounded by timeout. No answer to the member list: not Reachable.
func Etcd(ctx context.Context, client *clientv3.Client, timeout time.Duration) cke.EtcdStatus {
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := client.MemberList(lctx)
	if err != nil {
		return cke.EtcdStatus{}
	}
	st := cke.EtcdStatus{Reachable: true}
	var wg sync.WaitGroup
	st.Members = make([]cke.EtcdMember, len(resp.Members))
	for i, m := range resp.Members {
		em := cke.EtcdMember{ID: m.ID, Name: m.Name, Learner: m.IsLearner}
		if len(m.PeerURLs) > 0 {
			em.PeerURL = m.PeerURLs[0]
			em.Address = hostOf(m.PeerURLs[0])
		}
		st.Members[i] = em
		if m.Name == "" || len(m.ClientURLs) == 0 {
			continue // added but never started
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			s, err := client.Status(sctx, m.ClientURLs[0])
			st.Members[i].Healthy = err == nil && s.Leader != 0 && len(s.Errors) == 0
		}()
	}
	wg.Wait()
	return st
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	h, _, err := net.SplitHostPort(u.Host)
	if err != nil {
		return u.Host
	}
	return h
}
