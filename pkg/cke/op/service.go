package op

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/cke/nodeexec"
	"github.com/openneco/neco/pkg/cke/status"
	"github.com/openneco/neco/pkg/cke/units"
)

// start is a StartService in progress: the units rendered for its nodes
// and what each start issued.
type start struct {
	e        *Env
	service  cke.Service
	nodes    []string
	units    map[string]*units.Unit
	startEnv map[string]map[string]string // by node; nil: the unit's own
	mu       sync.Mutex
	notAfter map[string]time.Time
}

func (e *Env) newStart(s cke.Service, nodes []string) (*start, error) {
	st := &start{e: e, service: s, nodes: nodes, units: map[string]*units.Unit{}, notAfter: map[string]time.Time{}}
	for _, a := range nodes {
		n := e.Cluster.Node(a)
		if n == nil {
			return nil, fmt.Errorf("%s is not in cluster.yml", a)
		}
		u := units.Render(e.Cluster, n, e.Inputs)[s]
		if u == nil {
			return nil, fmt.Errorf("%s does not run %s", a, s)
		}
		st.units[a] = u
	}
	return st, nil
}

// steps are: install the binary, write files (with new certificates),
// (re)start, wait until it serves, record the hash on the node.
func (st *start) steps() []Step {
	var steps []Step
	if st.units[st.nodes[0]].Binary != nil {
		steps = append(steps, Step{"install " + st.units[st.nodes[0]].Binary.Name, st.install})
	}
	return append(steps,
		Step{"write files of " + string(st.service), st.writeFiles},
		Step{"start " + st.service.Unit(), st.start},
		Step{"wait for " + string(st.service), st.wait},
		Step{"record " + string(st.service), st.record},
	)
}

func (st *start) install(ctx context.Context) error {
	return eachNode(ctx, st.nodes, func(ctx context.Context, addr string) error {
		return st.e.installBinary(ctx, addr, st.units[addr].Binary)
	})
}

// installBinary copies b to addr unless it is there already.
func (e *Env) installBinary(ctx context.Context, addr string, b *units.Binary) error {
	dst := b.NodePath()
	if _, err := e.Nodes.Run(ctx, addr, "test -x "+quote(dst), nil); err == nil {
		return nil
	} else if !isExit(err) {
		return err
	}
	f, err := os.Open(b.Source)
	if err != nil {
		return fmt.Errorf("open %s: %w", b.Name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	started := time.Now()
	if err := e.Nodes.Install(ctx, addr, dst, f, fi.Size(), b.SHA256, nil); err != nil {
		return err
	}
	e.log().Info("installed binary", "node", addr, "binary", b.Name, "bytes", fi.Size(), "took", time.Since(started))
	return nil
}

// quote makes s one word for sh.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func isExit(err error) bool {
	var ee *nodeexec.ExitError
	return errors.As(err, &ee)
}

func (st *start) writeFiles(ctx context.Context) error {
	return eachNode(ctx, st.nodes, func(ctx context.Context, addr string) error {
		u := st.units[addr]
		notAfter, err := st.e.writeUnitFiles(ctx, addr, u)
		if err != nil {
			return err
		}
		env := u.StartEnv
		if st.startEnv != nil && st.startEnv[addr] != nil {
			env = st.startEnv[addr]
		}
		if len(env) > 0 {
			if err := st.e.Nodes.WriteFile(ctx, addr, u.StartEnvFile(), units.EnvFile(env), 0o644); err != nil {
				return err
			}
		}
		st.mu.Lock()
		st.notAfter[addr] = notAfter
		st.mu.Unlock()
		return nil
	})
}

// writeUnitFiles issues u's certificates and writes them, its files and
// its unit; it returns the earliest expiry of the certificates.
func (e *Env) writeUnitFiles(ctx context.Context, addr string, u *units.Unit) (time.Time, error) {
	var earliest time.Time
	for _, c := range u.Certs {
		cert, key, notAfter, err := e.Certs.Issue(ctx, c, e.CertTTL)
		if err != nil {
			return time.Time{}, fmt.Errorf("issue %s: %w", path.Base(c.File), err)
		}
		if c.Bundle {
			if err := e.Nodes.WriteFile(ctx, addr, c.File+".pem", append(append([]byte{}, cert...), key...), 0o600); err != nil {
				return time.Time{}, err
			}
		} else {
			if err := e.Nodes.WriteFile(ctx, addr, c.File+".key", key, 0o600); err != nil {
				return time.Time{}, err
			}
			if err := e.Nodes.WriteFile(ctx, addr, c.File+".crt", cert, 0o644); err != nil {
				return time.Time{}, err
			}
		}
		if earliest.IsZero() || notAfter.Before(earliest) {
			earliest = notAfter
		}
	}
	for _, f := range u.Files {
		data := []byte(f.Content)
		switch {
		case f.CA != "":
			ca, err := e.Certs.CACert(ctx, f.CA)
			if err != nil {
				return time.Time{}, fmt.Errorf("CA %s: %w", f.CA, err)
			}
			data = ca
		case f.Secret != "":
			s, ok := e.Secrets[f.Secret]
			if !ok {
				return time.Time{}, fmt.Errorf("secret %s is missing", f.Secret)
			}
			data = s
		}
		if err := e.Nodes.WriteFile(ctx, addr, f.Path, data, os.FileMode(f.Mode)); err != nil {
			return time.Time{}, err
		}
	}
	if unit := u.SystemdUnit(); unit != nil {
		if err := e.Nodes.WriteFile(ctx, addr, path.Join(units.UnitDir, u.Service.Unit()), unit, 0o644); err != nil {
			return time.Time{}, err
		}
	}
	return earliest, nil
}

func (st *start) start(ctx context.Context) error {
	verb := "restart"
	if st.service == cke.Rivers {
		verb = "reload-or-restart" // HAProxy reloads without dropping connections
	}
	unit := st.service.Unit()
	cmd := fmt.Sprintf("systemctl daemon-reload && systemctl enable -q %s && systemctl %s %s", unit, verb, unit)
	return eachNode(ctx, st.nodes, func(ctx context.Context, addr string) error {
		_, err := st.e.Nodes.Run(ctx, addr, cmd, nil)
		return err
	})
}

// wait polls until the unit has been active twice in a row, a second
// apart (a crash loop is never active for long), and the service answers.
func (st *start) wait(ctx context.Context) error {
	unit := st.service.Unit()
	probe := probes[st.service]
	return eachNode(ctx, st.nodes, func(ctx context.Context, addr string) error {
		return poll(ctx, st.e.readyTimeout(), time.Second, func(ctx context.Context) error {
			for i := range 2 {
				out, err := st.e.Nodes.Run(ctx, addr, "systemctl is-active "+unit+" || true", nil)
				if err != nil {
					return err
				}
				switch s := strings.TrimSpace(string(out)); s {
				case "active":
				case "inactive":
					// Stopped after the restart (by someone else): fail now,
					// the next decision starts it again.
					return stopPolling{fmt.Errorf("%s was stopped", unit)}
				default:
					return fmt.Errorf("%s is %s", unit, s)
				}
				if i == 0 {
					time.Sleep(time.Second)
				}
			}
			if probe != "" {
				if _, err := st.e.Nodes.Run(ctx, addr, probe, nil); err != nil {
					return err
				}
			}
			if st.service == cke.APIServer && st.e.Kube != nil {
				return st.e.Kube.ReadyzAt(ctx, addr)
			}
			return nil
		})
	})
}

// probes ask a started service on its node whether it serves.
var probes = map[cke.Service]string{
	cke.Kubelet:           "curl -fsS --max-time 3 http://127.0.0.1:10248/healthz",
	cke.ControllerManager: "curl -fsSk --max-time 3 https://127.0.0.1:10257/healthz",
	cke.Scheduler:         "curl -fsSk --max-time 3 https://127.0.0.1:10259/healthz",
	cke.Etcd:              "curl -fsS --max-time 3 http://127.0.0.1:2381/health?serializable=true",
	cke.Containerd:        "ctr version >/dev/null",
}

func (st *start) record(ctx context.Context) error {
	return eachNode(ctx, st.nodes, func(ctx context.Context, addr string) error {
		st.mu.Lock()
		r := status.Record{Hash: st.units[addr].Hash(), CertNotAfter: st.notAfter[addr], Started: time.Now().UTC()}
		st.mu.Unlock()
		data, err := json.Marshal(r)
		if err != nil {
			return err
		}
		return st.e.Nodes.WriteFile(ctx, addr, units.StateFile(st.service), data, 0o644)
	})
}

// stopCommand stops and removes the units of services.
func stopCommand(services ...cke.Service) string {
	var b strings.Builder
	for _, s := range services {
		if s == cke.Containerd {
			continue // the node's own
		}
		u := s.Unit()
		fmt.Fprintf(&b, "systemctl disable -q --now %s 2>/dev/null || true; rm -f %s %s\n",
			u, path.Join(units.UnitDir, u), units.StateFile(s))
	}
	b.WriteString("systemctl daemon-reload\n")
	return b.String()
}

func (e *Env) stopSteps(s cke.Service, nodes []string) []Step {
	return []Step{{"stop " + s.Unit(), func(ctx context.Context) error {
		return eachNode(ctx, nodes, func(ctx context.Context, addr string) error {
			_, err := e.Nodes.Run(ctx, addr, stopCommand(s), nil)
			return err
		})
	}}}
}
