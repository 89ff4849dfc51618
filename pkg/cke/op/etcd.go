package op

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/cke/units"
)

// etcdHealthy checks that a majority of voting members answers.
func (e *Env) etcdHealthy(ctx context.Context) error {
	if e.Etcd == nil {
		return fmt.Errorf("no etcd client")
	}
	resp, err := e.Etcd.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("member list: %w", err)
	}
	voters, healthy := 0, 0
	for _, m := range resp.Members {
		if m.IsLearner {
			continue
		}
		voters++
		if len(m.ClientURLs) == 0 {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s, err := e.Etcd.Status(sctx, m.ClientURLs[0])
		cancel()
		if err == nil && s.Leader != 0 {
			healthy++
		}
	}
	if healthy <= voters/2 {
		return fmt.Errorf("%d of %d members healthy", healthy, voters)
	}
	return nil
}

func (e *Env) etcdWaitStep() Step {
	return Step{"wait for an etcd quorum", func(ctx context.Context) error {
		return poll(ctx, e.readyTimeout(), 2*time.Second, e.etcdHealthy)
	}}
}

// bootstrapSteps start etcd on nodes as members of a new cluster of
// every control plane, then wait for its quorum.
func (e *Env) bootstrapSteps(nodes []string) ([]Step, error) {
	st, err := e.newStart(cke.Etcd, nodes)
	if err != nil {
		return nil, err
	}
	return append(st.steps(), e.etcdWaitStep()), nil
}

// addMemberSteps add addr as a learner (unless it is a member already),
// start etcd there joining the existing cluster, and promote it once it
// has caught up.
func (e *Env) addMemberSteps(addr string) ([]Step, error) {
	st, err := e.newStart(cke.Etcd, []string{addr})
	if err != nil {
		return nil, err
	}
	peerURL := fmt.Sprintf("https://%s:%d", addr, units.EtcdPeerPort)
	var id uint64
	add := Step{"add " + addr + " as an etcd learner", func(ctx context.Context) error {
		resp, err := e.Etcd.MemberList(ctx)
		if err != nil {
			return fmt.Errorf("member list: %w", err)
		}
		var initial []string
		for _, m := range resp.Members {
			for _, u := range m.PeerURLs {
				if u == peerURL {
					id = m.ID
				}
			}
		}
		if id == 0 {
			// Data from an earlier membership would make it rejoin as
			// the member it was: start clean.
			if _, err := e.Nodes.Run(ctx, addr, stopCommand(cke.Etcd)+"rm -rf "+quote(units.EtcdDataDir), nil); err != nil {
				return err
			}
			added, err := e.Etcd.MemberAddAsLearner(ctx, []string{peerURL})
			if err != nil {
				return fmt.Errorf("member add: %w", err)
			}
			id = added.Member.ID
			resp.Members = added.Members
		}
		for _, m := range resp.Members {
			name := m.Name
			if m.ID == id || name == "" {
				name = hostOfURL(m.PeerURLs[0])
			}
			for _, u := range m.PeerURLs {
				initial = append(initial, name+"="+u)
			}
		}
		st.startEnv = map[string]map[string]string{addr: {
			"ETCD_INITIAL_CLUSTER":       strings.Join(initial, ","),
			"ETCD_INITIAL_CLUSTER_STATE": "existing",
			"ETCD_INITIAL_CLUSTER_TOKEN": "cke-" + e.Cluster.Name,
		}}
		return nil
	}}
	promote := Step{"promote " + addr, func(ctx context.Context) error {
		return poll(ctx, e.readyTimeout(), 2*time.Second, func(ctx context.Context) error {
			resp, err := e.Etcd.MemberList(ctx)
			if err != nil {
				return err
			}
			for _, m := range resp.Members {
				if m.ID == id && !m.IsLearner {
					return nil
				}
			}
			_, err = e.Etcd.MemberPromote(ctx, id)
			return err
		})
	}}
	steps := []Step{add}
	return append(append(steps, st.steps()...), promote), nil
}

func hostOfURL(u string) string {
	h := strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
	if i := strings.LastIndex(h, ":"); i >= 0 {
		h = h[:i]
	}
	return h
}

func (e *Env) removeMemberSteps(id uint64, addr string) []Step {
	return []Step{{fmt.Sprintf("remove etcd member %x (%s)", id, addr), func(ctx context.Context) error {
		_, err := e.Etcd.MemberRemove(ctx, id)
		if err != nil && strings.Contains(err.Error(), "member not found") {
			return nil // removed already
		}
		return err
	}}}
}

func (e *Env) destroySteps(nodes []string) []Step {
	return []Step{{"stop etcd and delete its data", func(ctx context.Context) error {
		return eachNode(ctx, nodes, func(ctx context.Context, addr string) error {
			_, err := e.Nodes.Run(ctx, addr, stopCommand(cke.Etcd)+"rm -rf "+quote(units.EtcdDataDir), nil)
			return err
		})
	}}}
}
