// Package agent is podnet's node daemon. It owns the node's share of the
// pod network: it answers the CNI plugin over a unix socket, takes pod
// addresses from the allocator (blocks claimed in the Kubernetes API),
// wires pods with nodenet, keeps one route per owned block in the export
// table for the BGP agent, and installs the plugin and its configuration
// once it serves.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/openneco/neco/pkg/cke/kubeapi"
	"github.com/openneco/neco/pkg/podnet"
	"github.com/openneco/neco/pkg/podnet/cni"
	"github.com/openneco/neco/pkg/podnet/ipam"
	"github.com/openneco/neco/pkg/podnet/nodenet"
)

// Config is what the daemon needs.
type Config struct {
	// NodeName is this node's Kubernetes name.
	NodeName string
	// Kube reaches the API.
	Kube *kubeapi.Client
	// Net wires pods (its NodeIP is the node's address).
	Net nodenet.Config
	// Socket is where the plugin reaches the daemon.
	Socket string
	// CNIBinDir receives the plugin (a copy of Executable) and CNIConfDir
	// its configuration; either empty skips that installation.
	CNIBinDir, CNIConfDir string
	// Executable is this program (os.Executable()).
	Executable string
	// Resync is the period of the full reconciliation (blocks, routes,
	// stale veths).
	Resync time.Duration
}

// ConfFile is the CNI configuration the daemon writes: it sorts before
// the other files containerd may find, so podnet is the pod network.
const ConfFile = "10-podnet.conflist"

// Agent is the daemon.
type Agent struct {
	cfg     Config
	alloc   *ipam.Allocator
	metrics *metrics

	mu   sync.Mutex
	pods map[string]nodenet.Pod // by cni.Request.Key
	// wiring is held shared by commands while they wire or unwire a pod
	// and record it, and exclusively by the sweep of unrecorded links, so
	// that a pod wired but not yet recorded is never swept.
	wiring sync.RWMutex
	// serving is set once the plugin can be answered.
	serving atomic.Bool
	// stripes serialize the commands for one pod interface (a key always
	// takes the same stripe).
	stripes [64]sync.Mutex
}

// New makes the daemon; Run starts it.
func New(cfg Config) *Agent {
	a := &Agent{cfg: cfg, pods: map[string]nodenet.Pod{}, metrics: newMetrics()}
	a.alloc = ipam.New(ipam.Config{Client: cfg.Kube, Node: cfg.NodeName, SyncRoutes: cfg.Net.SyncExport})
	return a
}

// Run restores the node's state, serves the plugin until ctx ends, and
// reconciles every Resync.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.cfg.Net.Init(); err != nil {
		return fmt.Errorf("podnet: node setup: %w", err)
	}
	pods, err := a.cfg.Net.List()
	if err != nil {
		return fmt.Errorf("podnet: reading the node's pods: %w", err)
	}
	used := make([]ipam.Use, 0, len(pods))
	for _, p := range pods {
		key := cni.Request{ContainerID: p.ContainerID, IfName: p.IfName}.Key()
		a.pods[key] = p
		used = append(used, ipam.Use{Pool: p.Pool, IP: p.IP, Key: key})
	}
	if err := a.startAllocator(ctx, used); err != nil {
		return err
	}
	slog.Info("podnet: state restored", "pods", len(pods), "blocks", len(a.alloc.Blocks()))

	os.Remove(a.cfg.Socket)
	ln, err := net.Listen("unix", a.cfg.Socket)
	if err != nil {
		return fmt.Errorf("podnet: %w", err)
	}
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	if err := a.installCNI(); err != nil {
		srv.Close()
		return err
	}
	a.serving.Store(true)
	slog.Info("podnet: serving", "socket", a.cfg.Socket)

	tick := time.NewTicker(a.cfg.Resync)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		case err := <-done:
			return fmt.Errorf("podnet: socket: %w", err)
		case <-tick.C:
			if err := a.resync(ctx); err != nil {
				slog.Error("podnet: resync", "error", err)
			}
		}
	}
}

// Health is the daemon's /health: healthy once it serves the plugin.
func (a *Agent) Health(context.Context) error {
	if !a.serving.Load() {
		return errors.New("podnet: not serving yet (restoring the node's state or waiting for the API)")
	}
	return nil
}

// startAllocator retries until the API answers and has this node (the
// daemon starts with the node, maybe before its API servers and before
// kubelet registers it).
func (a *Agent) startAllocator(ctx context.Context, used []ipam.Use) error {
	for wait := time.Second; ; wait = min(wait*2, 30*time.Second) {
		err := a.alloc.Start(ctx, used)
		if err == nil || errors.Is(err, ipam.ErrIncomplete) {
			if err != nil {
				slog.Error("podnet: some pods' addresses were not restored", "error", err)
			}
			a.metrics.observe(a.alloc.Stats())
			return nil
		}
		slog.Error("podnet: reading the node's blocks", "error", err, "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// resync re-reads the blocks, re-syncs the export table and sweeps what
// no pod uses.
func (a *Agent) resync(ctx context.Context) error {
	err := a.alloc.Resync(ctx)
	a.metrics.observe(a.alloc.Stats())
	a.wiring.Lock()
	defer a.wiring.Unlock()
	a.mu.Lock()
	keep := make([]nodenet.Pod, 0, len(a.pods))
	for _, p := range a.pods {
		keep = append(keep, p)
	}
	a.mu.Unlock()
	return errors.Join(err, a.cfg.Net.Sweep(keep))
}

// installCNI copies the executable into the CNI bin directory and writes
// the configuration, each atomically, so containerd never runs a half
// written plugin nor reads a half written file.
func (a *Agent) installCNI() error {
	if a.cfg.CNIBinDir != "" {
		data, err := os.ReadFile(a.cfg.Executable)
		if err != nil {
			return fmt.Errorf("podnet: reading the plugin: %w", err)
		}
		if err := writeAtomic(filepath.Join(a.cfg.CNIBinDir, cni.PluginType), data, 0o755); err != nil {
			return err
		}
	}
	if a.cfg.CNIConfDir != "" {
		conf, err := ConfList(a.cfg.Socket, filepath.Join(a.cfg.CNIBinDir, "portmap"))
		if err != nil {
			return err
		}
		if err := writeAtomic(filepath.Join(a.cfg.CNIConfDir, ConfFile), conf, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// ConfList is the CNI configuration list: podnet, then portmap (host
// ports) when its executable exists and speaks CNI 1.0.0 or newer. Its
// version is the newest both speak: 1.1.0 for podnet alone; with
// portmap, what portmap's VERSION answers (Debian 12's plugins stop at
// 1.0.0, and a runtime's DEL to a plugin refusing the list's version
// fails the removal of the sandbox).
func ConfList(socket, portmap string) ([]byte, error) {
	plugins := []map[string]any{{"type": cni.PluginType, "socket": socket}}
	version := "1.1.0"
	if v := newestOf(portmap, "1.1.0", "1.0.0"); v != "" {
		plugins = append(plugins, map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}})
		version = v
	}
	return json.MarshalIndent(map[string]any{"cniVersion": version, "name": "podnet", "plugins": plugins}, "", "  ")
}

// newestOf returns the first of versions the CNI plugin at path supports,
// or "" when it is missing or supports none.
func newestOf(path string, versions ...string) string {
	cmd := exec.Command(path)
	cmd.Env = []string{"CNI_COMMAND=VERSION"}
	cmd.Stdin = strings.NewReader(`{"cniVersion":"1.0.0"}`)
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	var info struct {
		Supported []string `json:"supportedVersions"`
	}
	if json.Unmarshal(out, &info) != nil {
		return ""
	}
	for _, v := range versions {
		if slices.Contains(info.Supported, v) {
			return v
		}
	}
	return ""
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Handler serves the plugin's commands.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/cni", func(w http.ResponseWriter, r *http.Request) {
		var rep cni.Reply
		if req, err := cni.DecodeRequest(r.Body); err != nil {
			rep.Error = types.NewError(types.ErrInvalidNetworkConfig, "podnet: "+err.Error(), "")
		} else {
			rep.Result, rep.Error = a.command(r.Context(), req)
		}
		w.Header().Set("Content-Type", "application/json")
		if rep.Error != nil {
			w.WriteHeader(http.StatusUnprocessableEntity)
		}
		json.NewEncoder(w).Encode(rep)
	})
	return mux
}

func (a *Agent) command(ctx context.Context, req cni.Request) (json.RawMessage, *types.Error) {
	if req.Command == cni.CmdStatus {
		return nil, nil
	}
	l := a.lock(req.Key())
	defer l.Unlock()
	a.wiring.RLock()
	defer a.wiring.RUnlock()
	start := time.Now()
	var res json.RawMessage
	var err error
	switch req.Command {
	case cni.CmdAdd:
		res, err = a.add(ctx, req)
	case cni.CmdDel:
		err = a.del(ctx, req)
	case cni.CmdCheck:
		err = a.check(req)
	}
	a.metrics.command(req.Command, time.Since(start), err)
	a.metrics.observe(a.alloc.Stats())
	if err != nil {
		slog.Error("podnet: "+req.Command, "pod", req.PodNamespace+"/"+req.PodName, "container", req.ContainerID, "error", err)
		var te *types.Error
		if errors.As(err, &te) {
			return nil, te
		}
		return nil, types.NewError(types.ErrInternal, err.Error(), "")
	}
	slog.Info("podnet: "+req.Command, "pod", req.PodNamespace+"/"+req.PodName, "container", req.ContainerID,
		"seconds", time.Since(start).Seconds())
	return res, nil
}

func (a *Agent) lock(key string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(key))
	l := &a.stripes[h.Sum32()%uint32(len(a.stripes))]
	l.Lock()
	return l
}

// pool is the address pool of a namespace: its annotation, or the default.
func (a *Agent) pool(ctx context.Context, ns string) (string, error) {
	if ns == "" {
		return podnet.DefaultPool, nil
	}
	var obj struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if err := a.cfg.Kube.Get(ctx, "/api/v1/namespaces/"+ns, &obj); err != nil {
		return "", fmt.Errorf("namespace %s: %w", ns, err)
	}
	if p := obj.Metadata.Annotations[podnet.PoolAnnotation]; p != "" {
		return p, nil
	}
	return podnet.DefaultPool, nil
}

func (a *Agent) add(ctx context.Context, req cni.Request) (json.RawMessage, error) {
	a.mu.Lock()
	p, ok := a.pods[req.Key()]
	if ok && p.Netns == "" { // restored at start: the alias does not keep the namespace
		p.Netns = req.Netns
		a.pods[req.Key()] = p
	}
	a.mu.Unlock()
	if ok && p.Netns == req.Netns {
		return a.result(p)
	}
	if ok { // the same container and interface in another namespace: start over
		if err := a.del(ctx, req); err != nil {
			return nil, err
		}
	}
	pool, err := a.pool(ctx, req.PodNamespace)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	ip, err := a.alloc.Allocate(ctx, pool, req.Key())
	a.metrics.allocation.Observe(time.Since(start).Seconds())
	if err != nil {
		return nil, err
	}
	p, err = a.cfg.Net.Setup(req.Netns, req.ContainerID, req.IfName, pool, ip)
	if err != nil {
		if _, ferr := a.alloc.Free(context.WithoutCancel(ctx), req.Key()); ferr != nil {
			err = errors.Join(err, fmt.Errorf("freeing %s: %w", ip, ferr))
		}
		return nil, err
	}
	a.mu.Lock()
	a.pods[req.Key()] = p
	a.mu.Unlock()
	return a.result(p)
}

func (a *Agent) del(ctx context.Context, req cni.Request) error {
	if _, err := a.cfg.Net.Teardown(req.ContainerID, req.IfName); err != nil {
		return err
	}
	a.mu.Lock()
	delete(a.pods, req.Key())
	a.mu.Unlock()
	_, err := a.alloc.Free(ctx, req.Key())
	return err
}

func (a *Agent) check(req cni.Request) error {
	a.mu.Lock()
	p, ok := a.pods[req.Key()]
	a.mu.Unlock()
	if !ok {
		return fmt.Errorf("no pod interface %s", req.Key())
	}
	return a.cfg.Net.Check(req.Netns, req.ContainerID, req.IfName, p.IP)
}

// result is the CNI result of a wired pod: its interface in the pod's
// namespace, a /32 with the node as gateway, and the default route.
func (a *Agent) result(p nodenet.Pod) (json.RawMessage, error) {
	gw := net.IP(a.cfg.Net.NodeIP.AsSlice())
	idx := 1
	res := &types100.Result{
		CNIVersion: types100.ImplementedSpecVersion,
		Interfaces: []*types100.Interface{
			{Name: p.HostVeth, Mac: p.HostMAC},
			{Name: p.IfName, Mac: p.ContainerMAC, Sandbox: p.Netns, Mtu: a.cfg.Net.MTU},
		},
		IPs:    []*types100.IPConfig{{Interface: &idx, Address: *prefixNet(netip.PrefixFrom(p.IP, 32)), Gateway: gw}},
		Routes: []*types.Route{{Dst: net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}, GW: gw}},
	}
	return json.Marshal(res)
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
