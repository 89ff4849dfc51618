// Package necodc runs neco on a virtual data center: it builds the
// default topology with vdc (boot servers with the BGP agent, workers that
// network-boot from sabakan, QEMU machines), installs a neco release
// package in the boot servers with dpkg, bootstraps them with `neco setup`,
// loads sabakan's IPAM, DHCP configuration, boot contents (an OS image, the
// BGP agent asset, the Ignition templates) and inventory, and waits until
// every machine has network-booted and is healthy in sabakan. It drives the
// data center only from outside, with the operator's commands run inside
// the machines (`vdc exec`), each logged. The dctest suites and `make demo`
// share it.
package necodc

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/openneco/neco/pkg/bmc"
	"github.com/openneco/neco/pkg/neco"
	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/vdc"
	"github.com/openneco/neco/pkg/vdc/menu"
	"github.com/openneco/neco/pkg/vdc/proc"
	"github.com/openneco/neco/pkg/vdc/qemu"
	"github.com/openneco/neco/pkg/vdc/spec"
)

// ShareDir is where every boot server sees the data center's share (read
// only): the packages, the bootstrap token, sabakan's inventory files and
// the boot contents, as an operator's USB stick would bring them.
const ShareDir = "/opt/neco-dc"

// Options of Create.
type Options struct {
	Names vdc.Names
	// Menu is the topology; menu.Default() when zero. Boot servers are
	// required; the BGP agent and network-booting workers are implied.
	Menu menu.Menu
	// Build provides the workers' programs (bgp-node-agent,
	// node-health-agent); it must outlive the data center.
	Build *Build
	// Repo is the source tree (Ignition templates).
	Repo        string
	RootfsCache string
	// Log receives progress and every command run in a machine.
	Log io.Writer
}

// DC is a virtual data center running neco.
type DC struct {
	Names vdc.Names
	Plan  *menu.Plan
	In    *vdc.Instance
	// Share is the host directory the boot servers see at ShareDir.
	Share string
	Repo  string
	log   io.Writer
	// Phases are the timed steps taken so far.
	Phases []Phase
	// BMC are the credentials of the machines' virtual BMCs.
	BMC bmc.Credentials
	// QEMUReset is when Bootstrap reset the QEMU machines.
	QEMUReset time.Time
	// apiServer is the API server Kubectl last reached.
	apiMu     sync.Mutex
	apiServer string
}

// Phase is one timed step of building or bootstrapping.
type Phase struct {
	Name string
	Took time.Duration
}

func (d *DC) logf(format string, args ...any) { fmt.Fprintf(d.log, format+"\n", args...) }

// phase runs f as a named, timed phase.
func (d *DC) phase(name string, f func() error) error {
	start := time.Now()
	d.logf("==> %s", name)
	err := f()
	took := time.Since(start)
	d.Phases = append(d.Phases, Phase{name, took})
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	d.logf("    %s took %s", name, took.Round(100*time.Millisecond))
	return nil
}

// Create builds the data center and waits until every machine has booted
// and the fabric has converged. The QEMU machines are paused (their
// firmware would spin on HTTP boot until sabakan serves contents); Bootstrap
// resets them once it does. On error, what was made stays: Destroy it.
func Create(ctx context.Context, o Options) (*DC, error) {
	m := o.Menu
	if m.Racks == 0 {
		m = menu.Default()
	}
	if !m.BootServers {
		return nil, errors.New("necodc: the menu has no boot servers")
	}
	m.Agent, m.WorkerDHCP, m.BMC = true, true, true
	if o.Log == nil {
		o.Log = io.Discard
	}
	files := filepath.Join(o.Names.StateDir(), "files")
	d := &DC{Names: o.Names, Share: filepath.Join(files, "neco"), Repo: o.Repo, log: o.Log}
	err := d.phase("create the virtual data center", func() error {
		p, err := menu.Generate(m, menu.Options{FilesDir: files, AgentBinary: o.Build.Program("bgp-node-agent"),
			HealthAgentBinary: o.Build.Program("node-health-agent")})
		if err != nil {
			return err
		}
		for _, n := range p.Cluster.NspawnNodes {
			if p.Hosts[n.Name].Role == menu.RoleBoot {
				n.Binds = append(n.Binds, spec.Bind{Source: d.Share, Target: ShareDir, ReadOnly: true})
			}
		}
		d.Plan = p
		if err := os.MkdirAll(d.Share, 0o755); err != nil {
			return err
		}
		if err := p.Write(files); err != nil {
			return err
		}
		if _, err := vdc.Create(ctx, p.Cluster, vdc.Options{Names: o.Names, RootfsCache: o.RootfsCache, Log: o.Log}); err != nil {
			return err
		}
		if d.In, err = vdc.Open(o.Names); err != nil {
			return err
		}
		if err := d.startBMCs(ctx, o.Build.Program("vdc"), files); err != nil {
			return err
		}
		for _, n := range p.Cluster.Nodes {
			if err := d.qmp(ctx, n.Name, "stop"); err != nil {
				return fmt.Errorf("pause %s: %w", n.Name, err)
			}
		}
		bctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		if _, err := d.In.WaitBooted(bctx); err != nil {
			return err
		}
		_, err = d.In.WaitBGP(bctx)
		return err
	})
	return d, err
}

// Open returns the DC of an existing instance (made by Create).
func Open(names vdc.Names, repo string, log io.Writer) (*DC, error) {
	in, err := vdc.Open(names)
	if err != nil {
		return nil, err
	}
	files := filepath.Join(names.StateDir(), "files")
	d := &DC{Names: names, In: in, Share: filepath.Join(files, "neco"), Repo: repo, log: log}
	if d.log == nil {
		d.log = io.Discard
	}
	var hosts map[string]menu.HostPlan
	if err := readJSON(filepath.Join(files, "hosts.json"), &hosts); err != nil {
		return nil, err
	}
	var routers []menu.Router
	if err := readJSON(filepath.Join(files, "routers.json"), &routers); err != nil {
		return nil, err
	}
	d.Plan = &menu.Plan{Cluster: in.Cluster, Hosts: hosts, Routers: routers}
	var creds struct{ Username, Password string }
	if err := readJSON(filepath.Join(names.StateDir(), "bmc-credentials.json"), &creds); err == nil {
		d.BMC = bmc.Credentials{Username: creds.Username, Password: creds.Password}
	}
	return d, nil
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// BootServers are the boot servers' names, by LRN.
func (d *DC) BootServers() []string {
	var out []string
	for _, n := range d.Plan.Cluster.NspawnNodes {
		if d.Plan.Hosts[n.Name].Role == menu.RoleBoot {
			out = append(out, n.Name)
		}
	}
	return out
}

// Workers are the nspawn machines that network-boot.
func (d *DC) Workers() []string {
	var out []string
	for _, n := range d.Plan.Cluster.NspawnNodes {
		if d.Plan.Hosts[n.Name].Role != menu.RoleBoot {
			out = append(out, n.Name)
		}
	}
	return out
}

// Exec runs argv in host, logging the command (as the operator would type
// it) and, on failure, its output.
func (d *DC) Exec(ctx context.Context, host string, argv ...string) (string, error) {
	d.logf("    $ vdc exec %s -- %s", host, strings.Join(argv, " "))
	return d.In.Run(ctx, host, argv...)
}

// quiet runs argv in host without logging it (polling).
func (d *DC) quiet(ctx context.Context, host string, argv ...string) (string, error) {
	return d.In.Run(ctx, host, argv...)
}

// onBoot runs argv in every boot server at once.
func (d *DC) onBoot(ctx context.Context, argv ...string) error {
	var wg sync.WaitGroup
	errs := make([]error, len(d.BootServers()))
	for i, b := range d.BootServers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := d.Exec(ctx, b, argv...); err != nil {
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// LRNs are the boot servers' logical rack numbers.
func (d *DC) LRNs() []int {
	var out []int
	for _, b := range d.BootServers() {
		out = append(out, int(d.Plan.Hosts[b].Rack))
	}
	return out
}

// Install installs a neco package (a file under Share) with dpkg in every
// boot server.
func (d *DC) Install(ctx context.Context, deb string) error {
	name := filepath.Base(deb)
	if err := linkOrCopy(deb, filepath.Join(d.Share, name)); err != nil {
		return err
	}
	return d.phase("install "+name+" in the boot servers", func() error {
		return d.onBoot(ctx, "dpkg", "-i", ShareDir+"/"+name)
	})
}

// Bootstrap takes freshly created boot servers to a running data center:
// the package installed, `neco setup` on every boot server at once, the
// first update request completed by the CD workers (sabakan up on every
// boot server), sabakan's IPAM, DHCP configuration, kernel parameters and
// boot contents loaded with `neco init-data`, the inventory registered
// with `sabactl machines create`, and the QEMU machines reset to network
// boot. The workers, retrying DHCP since they booted, then come up.
func (d *DC) Bootstrap(ctx context.Context, b *Build) error {
	if err := d.Install(ctx, b.Deb); err != nil {
		return err
	}
	token := filepath.Join(d.Share, "bootstrap-token")
	err := d.phase("neco setup on every boot server", func() error {
		raw := make([]byte, 32)
		rand.Read(raw)
		if err := os.WriteFile(token, []byte(base64.StdEncoding.EncodeToString(raw)+"\n"), 0o600); err != nil {
			return err
		}
		// Every server waits for the others at each stage; here they all
		// start together, so a long wait means something is wrong.
		argv := []string{"neco", "setup", "--timeout", "5m", "--bootstrap-token-file", ShareDir + "/bootstrap-token"}
		for _, l := range d.LRNs() {
			argv = append(argv, strconv.Itoa(l))
		}
		return d.onBoot(ctx, argv...)
	})
	// The token is useless after setup; nobody keeps it.
	os.Remove(token)
	if err != nil {
		return err
	}
	if err := d.phase("first update request (sabakan up on every boot server)", func() error {
		return d.WaitUpdate(ctx, b.Version, 5*time.Minute)
	}); err != nil {
		return err
	}
	boot0 := d.BootServers()[0]
	if err := d.phase("load sabakan: IPAM, DHCP, kernel parameters, boot contents, machines", func() error {
		if err := d.writeInventory(b); err != nil {
			return err
		}
		steps := [][]string{
			{"neco", "init-data", "--ipam", ShareDir + "/ipam.json", "--dhcp", ShareDir + "/dhcp.json", "--contents", ShareDir + "/contents"},
			{"sabactl", "kernel-params", "set", "console=ttyS0"},
			{"sabactl", "machines", "create", "-f", ShareDir + "/machines.json"},
		}
		for _, argv := range steps {
			if _, err := d.Exec(ctx, boot0, argv...); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	for _, n := range d.Plan.Cluster.Nodes {
		for _, cmd := range []string{"system_reset", "cont"} {
			if err := d.qmp(ctx, n.Name, cmd); err != nil {
				return err
			}
		}
		d.QEMUReset = time.Now()
		d.logf("    %s: reset, network-booting", n.Name)
	}
	return nil
}

// qmp sends a QMP command to a QEMU machine, waiting for QEMU to open its
// monitor socket first.
func (d *DC) qmp(ctx context.Context, host, cmd string) error {
	sock := filepath.Join(d.Names.HostDir(host), "qmp.sock")
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var err error
	if werr := proc.WaitFor(ctx, 100*time.Millisecond, func() bool {
		_, err = qemu.QMP(sock, cmd, nil)
		return err == nil
	}); werr != nil {
		return fmt.Errorf("%s: %s: %w", host, cmd, err)
	}
	return nil
}

// OSImageID is the id of the OS image Bootstrap uploads.
const OSImageID = "vdc-1"

// writeInventory puts sabakan's files and the boot contents in the share.
func (d *DC) writeInventory(b *Build) error {
	files := filepath.Join(d.Names.StateDir(), "files")
	for _, f := range []string{"ipam.json", "dhcp.json", "machines.json"} {
		if err := linkOrCopy(filepath.Join(files, f), filepath.Join(d.Share, f)); err != nil {
			return err
		}
	}
	contents := filepath.Join(d.Share, "contents")
	if err := os.MkdirAll(filepath.Join(contents, "assets"), 0o755); err != nil {
		return err
	}
	if err := linkOrCopy(b.Program("bgp-node-agent"), filepath.Join(contents, "assets", "bgp-node-agent")); err != nil {
		return err
	}
	if err := WriteOSImage(filepath.Join(contents, "images", "coreos", OSImageID+".tar"), Busybox, b.Program("node-health-agent")); err != nil {
		return err
	}
	os.RemoveAll(filepath.Join(contents, "ignitions"))
	if out, err := exec.Command("cp", "-R", filepath.Join(d.Repo, "ignitions"), contents+"/").CombinedOutput(); err != nil {
		return fmt.Errorf("copy the Ignition templates: %w: %s", err, out)
	}
	return nil
}

// Busybox is the static busybox of the OS image (Debian's busybox-static).
const Busybox = "/bin/busybox"

// CDStatus is `neco status -o json`.
type CDStatus struct {
	Latest        string                        `json:"latest_release"`
	Request       *neco.UpdateRequest           `json:"request"`
	Statuses      map[string]*neco.UpdateStatus `json:"statuses"`
	BootServers   []int                         `json:"boot_servers"`
	UpdaterLeader string                        `json:"updater_leader"`
	Env           string                        `json:"env"`
}

// Status reads `neco status -o json` on host.
func (d *DC) Status(ctx context.Context, host string) (*CDStatus, error) {
	out, err := d.quiet(ctx, host, "neco", "status", "-o", "json")
	if err != nil {
		return nil, err
	}
	var s CDStatus
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		return nil, fmt.Errorf("neco status: %w: %s", err, out)
	}
	return &s, nil
}

// Completed reports whether every server of the request completed it
// for version; an aborted server or a stopped request is an error.
func (s *CDStatus) Completed(version string) (bool, error) {
	r := s.Request
	if r == nil || r.Version != version {
		return false, nil
	}
	if r.Stop {
		return false, fmt.Errorf("the update to %s is stopped: %s", version, r.StopReason)
	}
	done := 0
	for _, l := range r.Servers {
		st := s.Statuses[strconv.Itoa(l)]
		if st == nil || st.RequestID != r.ID {
			continue
		}
		switch st.Cond {
		case neco.CondAborted:
			return false, fmt.Errorf("boot server %d aborted step %d (%s): %s", l, st.Step, st.StepName, st.Message)
		case neco.CondCompleted:
			done++
		}
	}
	return done == len(r.Servers), nil
}

// WaitUpdate waits until the update request for version has completed on
// every boot server of it.
func (d *DC) WaitUpdate(ctx context.Context, version string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last error
	err := proc.WaitFor(ctx, time.Second, func() bool {
		for _, b := range d.BootServers() {
			s, err := d.Status(ctx, b)
			if err != nil {
				last = err
				continue
			}
			ok, err := s.Completed(version)
			if err != nil {
				last = err
				cancel()
			}
			return ok
		}
		return false
	})
	if err != nil {
		return fmt.Errorf("update to %s not completed: %w (last: %v)", version, err, last)
	}
	return nil
}

// Machines lists sabakan's machines, asking the boot servers in turn.
func (d *DC) Machines(ctx context.Context) ([]sabakan.Machine, error) {
	var last error
	for _, b := range d.BootServers() {
		out, err := d.quiet(ctx, b, "sabactl", "machines", "get", "-o", "json")
		if err != nil {
			last = err
			continue
		}
		var ms []sabakan.Machine
		if err := json.Unmarshal([]byte(out), &ms); err != nil {
			return nil, err
		}
		return ms, nil
	}
	return nil, last
}

// States maps each machine name of the plan (serial → name) to its state
// in sabakan; machines sabakan does not know are absent.
func (d *DC) States(ctx context.Context) (map[string]sabakan.MachineState, error) {
	ms, err := d.Machines(ctx)
	if err != nil {
		return nil, err
	}
	bySerial := map[string]string{}
	for name, h := range d.Plan.Hosts {
		bySerial[h.Serial] = name
	}
	out := map[string]sabakan.MachineState{}
	for _, m := range ms {
		if name, ok := bySerial[m.Spec.Serial]; ok {
			out[name] = m.Status.State
		}
	}
	return out, nil
}

// WaitStates waits until every named machine is in state want.
func (d *DC) WaitStates(ctx context.Context, want sabakan.MachineState, limit time.Duration, names ...string) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last map[string]sabakan.MachineState
	err := proc.WaitFor(ctx, time.Second, func() bool {
		s, err := d.States(ctx)
		if err != nil {
			return false
		}
		last = s
		for _, n := range names {
			if s[n] != want {
				return false
			}
		}
		return true
	})
	if err != nil {
		var off []string
		for _, n := range names {
			if last[n] != want {
				off = append(off, n+"="+string(last[n]))
			}
		}
		return fmt.Errorf("not %s after %s: %s", want, limit, strings.Join(off, " "))
	}
	return nil
}

// NodeSessions counts the ToRs' established BGP sessions with machines.
func (d *DC) NodeSessions(ctx context.Context) (int, error) {
	s, err := d.In.BGPSessions(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, x := range s {
		if strings.HasPrefix(x.Name, "node") && x.Established() {
			n++
		}
	}
	return n, nil
}

// WaitReady waits until every machine peers with both ToRs and is healthy
// in sabakan: the workers and the QEMU machines have network-booted and
// their agents run.
func (d *DC) WaitReady(ctx context.Context, limit time.Duration) error {
	return d.phase("workers and QEMU machines network-boot; every machine healthy in sabakan", func() error {
		ctx, cancel := context.WithTimeout(ctx, limit)
		defer cancel()
		want := 2 * len(d.Plan.Hosts)
		if err := proc.WaitFor(ctx, 500*time.Millisecond, func() bool {
			n, err := d.NodeSessions(ctx)
			return err == nil && n == want
		}); err != nil {
			n, _ := d.NodeSessions(context.Background())
			return fmt.Errorf("%d of %d machine BGP sessions established", n, want)
		}
		var names []string
		for name := range d.Plan.Hosts {
			names = append(names, name)
		}
		slices.Sort(names)
		deadline, _ := ctx.Deadline()
		if err := d.WaitStates(ctx, sabakan.StateHealthy, time.Until(deadline), names...); err != nil {
			return err
		}
		for _, n := range d.Plan.Cluster.Nodes {
			if took, err := d.HealthyAfterReset(ctx, n.Name); err == nil {
				d.logf("    %s: healthy %s after its reset", n.Name, took.Round(100*time.Millisecond))
			}
		}
		return nil
	})
}

// HealthyAfterReset is how long after Bootstrap reset it the QEMU machine
// name became healthy, by the time of its state in sabakan.
func (d *DC) HealthyAfterReset(ctx context.Context, name string) (time.Duration, error) {
	ms, err := d.Machines(ctx)
	if err != nil {
		return 0, err
	}
	for _, m := range ms {
		if m.Spec.Serial == d.Plan.Hosts[name].Serial {
			if m.Status.State != sabakan.StateHealthy {
				return 0, fmt.Errorf("%s is %s", name, m.Status.State)
			}
			return m.Status.Timestamp.Sub(d.QEMUReset), nil
		}
	}
	return 0, fmt.Errorf("%s: not in sabakan", name)
}

// Destroy removes the data center and checks that nothing is left.
func Destroy(ctx context.Context, names vdc.Names) error {
	if err := vdc.Destroy(ctx, names); err != nil {
		return err
	}
	left, err := vdc.Leftovers(names)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("necodc: left behind: %s", strings.Join(left, ", "))
	}
	return nil
}
