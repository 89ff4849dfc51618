// Package vdccli is the vdc command: create a virtual data center from
// placemat-style documents or from a menu, look inside it, and destroy it.
package vdccli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/vdc"
	"github.com/openneco/neco/pkg/vdc/menu"
	"github.com/openneco/neco/pkg/vdc/rootfs"
	"github.com/openneco/neco/pkg/vdc/spec"
	"github.com/openneco/neco/pkg/version"
)

type globals struct {
	instance  string
	stateRoot string
}

func (g *globals) names() vdc.Names {
	return vdc.Names{Instance: g.instance, StateRoot: g.stateRoot}
}

func (g *globals) open() (*vdc.Instance, error) {
	in, err := vdc.Open(g.names())
	if errors.Is(err, vdc.ErrNotFound) {
		return nil, cli.WithCode(cli.ExitNotFound, err)
	}
	return in, err
}

// NewRoot returns the vdc root command.
func NewRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "vdc",
		Short: "A virtual data center on one machine",
		Long: `vdc builds a whole data center on this machine from real parts: Linux bridges
for networks, network namespaces running BIRD and dnsmasq for routers, light
machines (full Debian systems booted with systemd-nspawn, each in its own
network namespace) and QEMU virtual machines (TCG, or KVM where it works;
OVMF for UEFI).

It reads placemat v2 resource documents (Network, NetworkNamespace, Node,
Image, DeviceClass) plus its own NspawnNode and Rootfs kinds, or generates
them from a menu of racks, spines and machines.

Every data center is an instance (--name). All it makes on the host is named
after it and recorded in its state directory, so 'vdc destroy' removes it
completely, also after a crash. Test networks are never routed or NATed to
the host's network. Needs root.`,
		Version: version.Version,
	}
	root.PersistentFlags().StringVarP(&g.instance, "name", "n", vdc.DefaultInstance, "instance name (1-6 lower-case letters/digits)")
	root.PersistentFlags().StringVar(&g.stateRoot, "state-root", vdc.DefaultStateRoot, "directory holding one state directory per instance")
	root.AddCommand(menuCmd(g), createCmd(g), destroyCmd(g), listCmd(g), execCmd(g), shellCmd(g), consoleCmd(g), bgpCmd(g), resetCmd(g), stopCmd(g), startCmd(g), bmcCmd(g))
	return root
}

type menuFlags struct {
	name   string
	m      menu.Menu
	agent  string
	health string
}

// options are the generation options the flags imply.
func (f *menuFlags) options(filesDir string) (menu.Options, error) {
	o := menu.Options{FilesDir: filesDir}
	if f.agent != "" {
		abs, err := filepath.Abs(f.agent)
		if err != nil {
			return o, err
		}
		if _, err := os.Stat(abs); err != nil {
			return o, cli.UsageError("--bgp-agent: %v", err)
		}
		o.AgentBinary = abs
	}
	if f.health != "" {
		abs, err := filepath.Abs(f.health)
		if err != nil {
			return o, err
		}
		if _, err := os.Stat(abs); err != nil {
			return o, cli.UsageError("--health-agent: %v", err)
		}
		o.HealthAgentBinary = abs
	}
	return o, nil
}

func addMenuFlags(cmd *cobra.Command, f *menuFlags) {
	cmd.Flags().StringVar(&f.name, "menu", "default", "predefined menu: default, small or routers")
	cmd.Flags().IntVar(&f.m.Racks, "racks", 0, "number of racks (overrides the menu)")
	cmd.Flags().IntVar(&f.m.Spines, "spines", 0, "number of spine routers (overrides the menu)")
	cmd.Flags().IntVar(&f.m.WorkersPerRack, "workers", -1, "nspawn worker machines per rack (overrides the menu)")
	cmd.Flags().IntVar(&f.m.QEMUNodes, "qemu", -1, "QEMU UEFI machines (overrides the menu)")
	cmd.Flags().String("boot-servers", "", "one boot server per rack: true or false (overrides the menu)")
	cmd.Flags().Bool("bmc", false, "a BMC network and namespace holding every machine's BMC address (serve them with 'vdc bmc serve')")
	cmd.Flags().Bool("worker-dhcp", false, "workers get their address by DHCP through the ToR relays (with --bgp-agent: they network-boot from sabakan)")
	cmd.Flags().StringVar(&f.agent, "bgp-agent", "", "bgp-node-agent executable to run in every nspawn machine (node0, BGP to both ToRs)")
	cmd.Flags().StringVar(&f.health, "health-agent", "", "node-health-agent executable for network-booting workers (with --bgp-agent and --worker-dhcp)")
	cmd.RegisterFlagCompletionFunc("menu", cobra.FixedCompletions([]string{"default", "small", "routers"}, cobra.ShellCompDirectiveNoFileComp))
}

func (f *menuFlags) resolve(cmd *cobra.Command) (menu.Menu, error) {
	m, err := menu.Named(f.name)
	if err != nil {
		return m, cli.UsageError("%v", err)
	}
	if f.m.Racks > 0 {
		m.Racks = f.m.Racks
	}
	if f.m.Spines > 0 {
		m.Spines = f.m.Spines
	}
	if f.m.WorkersPerRack >= 0 {
		m.WorkersPerRack = f.m.WorkersPerRack
	}
	if f.m.QEMUNodes >= 0 {
		m.QEMUNodes = f.m.QEMUNodes
	}
	if s, _ := cmd.Flags().GetString("boot-servers"); s != "" {
		m.BootServers = s == "true"
	}
	if b, _ := cmd.Flags().GetBool("bmc"); b {
		m.BMC = true
	}
	if d, _ := cmd.Flags().GetBool("worker-dhcp"); d {
		m.WorkerDHCP = true
	}
	m.Agent = f.agent != ""
	if err := m.Validate(); err != nil {
		return m, cli.UsageError("%v", err)
	}
	return m, nil
}

func menuCmd(g *globals) *cobra.Command {
	var f menuFlags
	var out string
	cmd := &cobra.Command{
		Use:   "menu --out DIR",
		Short: "Write the documents, router configs and sabakan inventory of a menu",
		Long: `Generates a data center from a menu and writes it to DIR: cluster.yml (the
resource documents), bird/*.conf (router configurations), machines.json,
ipam.json and dhcp.json (the sabakan inventory), routers.json and hosts.json
(the address plan). 'vdc create -f DIR/cluster.yml' builds it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := f.resolve(cmd)
			if err != nil {
				return err
			}
			dir, err := filepath.Abs(out)
			if err != nil {
				return err
			}
			o, err := f.options(dir)
			if err != nil {
				return err
			}
			p, err := menu.Generate(m, o)
			if err != nil {
				return err
			}
			if err := p.Write(dir); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s/cluster.yml: %d networks, %d routers, %d nspawn nodes, %d QEMU nodes\n",
				dir, len(p.Cluster.Networks), len(p.Cluster.Namespaces), len(p.Cluster.NspawnNodes), len(p.Cluster.Nodes))
			return nil
		},
	}
	addMenuFlags(cmd, &f)
	cmd.Flags().StringVar(&out, "out", "", "directory to write to (required)")
	cmd.MarkFlagRequired("out")
	return cmd
}

func createCmd(g *globals) *cobra.Command {
	var f menuFlags
	var file, accel, cache string
	var wait time.Duration
	var keep bool
	var out cli.Output
	cmd := &cobra.Command{
		Use:   "create [-f cluster.yml | --menu NAME]",
		Short: "Build a data center",
		Long: `Builds a data center from resource documents (-f) or a menu (--menu, the
default). Root trees for nspawn machines are built with debootstrap the first
time (about a minute) and cached in --rootfs-cache. With --wait (the default
5m) it returns once every nspawn machine has booted and every BGP session is
established.

If creation fails, what was made is destroyed again unless --keep-on-error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n := g.names()
			if err := vdc.CheckInstance(n.Instance); err != nil {
				return cli.UsageError("%v", err)
			}
			if _, err := vdc.Open(n); err == nil {
				return cli.WithCode(cli.ExitConflict, fmt.Errorf("instance %s exists: run 'vdc destroy --name %s' first", n.Instance, n.Instance))
			}
			var c *spec.Cluster
			if file != "" {
				fh, err := os.Open(file)
				if err != nil {
					return err
				}
				defer fh.Close()
				c, err = spec.Parse(fh)
				if err != nil {
					return cli.WithCode(cli.ExitUsage, fmt.Errorf("%s: %w", file, err))
				}
			} else {
				m, err := f.resolve(cmd)
				if err != nil {
					return err
				}
				files := filepath.Join(n.StateDir(), "files")
				o, err := f.options(files)
				if err != nil {
					return err
				}
				p, err := menu.Generate(m, o)
				if err != nil {
					return err
				}
				if err := p.Write(files); err != nil {
					return err
				}
				c = p.Cluster
			}
			ctx := cmd.Context()
			log := cmd.ErrOrStderr()
			t, err := vdc.Create(ctx, c, vdc.Options{Names: n, RootfsCache: cache, Accel: accel, Log: log})
			if err == nil && wait > 0 {
				err = waitReady(ctx, n, wait, log)
			}
			if err != nil {
				if !keep {
					fmt.Fprintf(log, "create failed; destroying instance %s\n", n.Instance)
					dctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
					defer cancel()
					if derr := vdc.Destroy(dctx, n); derr != nil {
						fmt.Fprintf(log, "destroy: %v\n", derr)
					}
				}
				return err
			}
			if out == cli.OutputJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), t)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "instance %s created in %s (rootfs %s, network %s, machines %s); see 'vdc list -n %s'\n",
				n.Instance, t.Total.Round(time.Millisecond), t.Rootfs.Round(time.Millisecond), t.Network.Round(time.Millisecond),
				t.Nodes.Round(time.Millisecond), n.Instance)
			return nil
		},
	}
	addMenuFlags(cmd, &f)
	cmd.Flags().StringVarP(&file, "file", "f", "", "resource documents (placemat v2 YAML) instead of a menu")
	cmd.Flags().StringVar(&accel, "accel", "auto", "QEMU accelerator: auto (TCG unless VDC_ACCEL=kvm), kvm or tcg")
	cmd.Flags().StringVar(&cache, "rootfs-cache", rootfs.DefaultCacheDir, "cache of debootstrapped root trees")
	cmd.Flags().DurationVar(&wait, "wait", 5*time.Minute, "wait up to this long for machines to boot and BGP to converge (0: do not wait)")
	cmd.Flags().BoolVar(&keep, "keep-on-error", false, "keep what was made when creation fails, for debugging")
	cli.AddOutputFlag(cmd, &out, cli.OutputSimple, cli.OutputJSON)
	return cmd
}

func waitReady(ctx context.Context, n vdc.Names, limit time.Duration, log io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	in, err := vdc.Open(n)
	if err != nil {
		return err
	}
	took, err := in.WaitBooted(ctx)
	if err != nil {
		return err
	}
	if len(took) > 0 {
		var max time.Duration
		for _, d := range took {
			max = maxDur(max, d)
		}
		fmt.Fprintf(log, "%d nspawn machines booted (last after %s)\n", len(took), max.Round(time.Millisecond))
	}
	s, err := in.WaitBGP(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "%d BGP sessions established\n", len(s))
	return nil
}

func maxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

func destroyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "destroy",
		Short: "Remove everything an instance made",
		Long: `Stops the instance's processes (everything in its cgroup), unmounts its
overlays, deletes its links, bridges and network namespaces, removes its
cgroups and state directory. Works from the ledger and by name, so it also
cleans up after a crash or a failed create; running it twice is harmless.
Fails (exit 1) and lists what is left if anything survives.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n := g.names()
			if err := vdc.CheckInstance(n.Instance); err != nil {
				return cli.UsageError("%v", err)
			}
			err := vdc.Destroy(cmd.Context(), n)
			left, lerr := vdc.Leftovers(n)
			if lerr != nil {
				return errors.Join(err, lerr)
			}
			if len(left) > 0 {
				return fmt.Errorf("instance %s not fully destroyed: %v (%v)", n.Instance, left, err)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "instance %s destroyed\n", n.Instance)
			return nil
		},
	}
}

func listCmd(g *globals) *cobra.Command {
	var out cli.Output
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the hosts of an instance: routers, nspawn and QEMU machines",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, err := g.open()
			if err != nil {
				return err
			}
			hosts := in.Hosts()
			if out == cli.OutputJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), hosts)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tKIND\tRUNNING\tADDRESSES\tAPPS")
			for _, h := range hosts {
				apps := ""
				for i, a := range h.Apps {
					if i > 0 {
						apps += ","
					}
					apps += fmt.Sprintf("%s(%d)", a.Name, a.PID)
				}
				addrs := ""
				for i, a := range h.Addresses {
					if i > 0 {
						addrs += " "
					}
					addrs += a
				}
				fmt.Fprintf(w, "%s\t%s\t%v\t%s\t%s\n", h.Name, h.Kind, h.Running, addrs, apps)
			}
			if !in.Complete {
				fmt.Fprintln(w, "(create did not finish: run 'vdc destroy')")
			}
			return w.Flush()
		},
	}
	cli.AddOutputFlag(cmd, &out, cli.OutputSimple, cli.OutputJSON)
	return cmd
}

func hostCompletion(g *globals) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveDefault
		}
		in, err := vdc.Open(g.names())
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []string
		for _, h := range in.Hosts() {
			names = append(names, h.Name)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// runAttached runs argv with the terminal attached and returns its exit
// status as the command's.
func runAttached(argv []string) error {
	c := exec.Command(argv[0], argv[1:]...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Exited() {
			return cli.WithCode(st.ExitStatus(), fmt.Errorf("%s exited with %d", argv[len(argv)-1], st.ExitStatus()))
		}
	}
	return err
}

func execCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "exec HOST -- COMMAND [ARG...]",
		Short: "Run a command in a router's namespace or inside an nspawn machine",
		Long: `Runs COMMAND inside HOST: in the network namespace of a router, or in all
namespaces of an nspawn machine (as root, like a login). The exit code is the
command's.`,
		Args:              cobra.MinimumNArgs(2),
		ValidArgsFunction: hostCompletion(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := g.open()
			if err != nil {
				return err
			}
			argv, err := in.ExecArgs(args[0], args[1:])
			if errors.Is(err, vdc.ErrNotFound) {
				return cli.WithCode(cli.ExitNotFound, err)
			}
			if err != nil {
				return err
			}
			return runAttached(argv)
		},
	}
	return cmd
}

func shellCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "shell HOST",
		Short:             "Open an interactive shell in a host",
		Args:              cli.ExactArgs(1),
		ValidArgsFunction: hostCompletion(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := g.open()
			if err != nil {
				return err
			}
			argv, err := in.ExecArgs(args[0], []string{"/bin/bash", "-l"})
			if errors.Is(err, vdc.ErrNotFound) {
				return cli.WithCode(cli.ExitNotFound, err)
			}
			if err != nil {
				return err
			}
			return runAttached(argv)
		},
	}
}

func consoleCmd(g *globals) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "console HOST",
		Short: "Show an nspawn machine's console, or attach to a QEMU machine's serial port",
		Long: `For an nspawn machine, prints its console output (read-only; -f follows it).
For a QEMU machine, attaches the terminal to its serial port; type Ctrl-] to
detach.`,
		Args:              cli.ExactArgs(1),
		ValidArgsFunction: hostCompletion(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := g.open()
			if err != nil {
				return err
			}
			path, socket, err := in.Console(args[0])
			if errors.Is(err, vdc.ErrNotFound) {
				return cli.WithCode(cli.ExitNotFound, err)
			}
			if err != nil {
				return err
			}
			if socket {
				return attachSerial(cmd.Context(), path)
			}
			if follow {
				return runAttached([]string{"tail", "-n", "+1", "-f", path})
			}
			return runAttached([]string{"cat", path})
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new console output")
	return cmd
}

// attachSerial connects the terminal, in raw mode, to a serial socket until
// Ctrl-] or the socket closes.
func attachSerial(ctx context.Context, path string) error {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return fmt.Errorf("serial console %s: %w", path, err)
	}
	defer conn.Close()
	fd := int(os.Stdin.Fd())
	if old, err := unix.IoctlGetTermios(fd, unix.TCGETS); err == nil {
		raw := *old
		raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		raw.Oflag &^= unix.OPOST
		raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		raw.Cflag &^= unix.CSIZE | unix.PARENB
		raw.Cflag |= unix.CS8
		raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
		if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err == nil {
			defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
		}
		fmt.Fprint(os.Stderr, "attached to the serial console; Ctrl-] detaches\r\n")
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(os.Stdout, conn); done <- struct{}{} }()
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := os.Stdin.Read(buf)
			for i := 0; i < n; i++ {
				if buf[i] == 0x1d { // Ctrl-]
					done <- struct{}{}
					return
				}
			}
			if n > 0 {
				conn.Write(buf[:n])
			}
			if err != nil {
				done <- struct{}{}
				return
			}
		}
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

func bgpCmd(g *globals) *cobra.Command {
	var out cli.Output
	cmd := &cobra.Command{
		Use:   "bgp",
		Short: "Show the BGP sessions of every router",
		Long:  `Asks every router's BIRD for its BGP protocols. Exit code 1 if any session is not established.`,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, err := g.open()
			if err != nil {
				return err
			}
			sessions, err := in.BGPSessions(cmd.Context())
			if err != nil {
				return err
			}
			if out == cli.OutputJSON {
				if err := cli.PrintJSON(cmd.OutOrStdout(), sessions); err != nil {
					return err
				}
			} else {
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "ROUTER\tSESSION\tSTATE\tINFO")
				for _, s := range sessions {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", s.Router, s.Name, s.State, s.Info)
				}
				w.Flush()
			}
			down := 0
			for _, s := range sessions {
				if !s.Established() {
					down++
				}
			}
			if down > 0 {
				return fmt.Errorf("%d of %d BGP sessions not established", down, len(sessions))
			}
			return nil
		},
	}
	cli.AddOutputFlag(cmd, &out, cli.OutputSimple, cli.OutputJSON)
	return cmd
}

func resetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "reset HOST",
		Short:             "Reset a QEMU machine: it boots again from its firmware",
		Args:              cli.ExactArgs(1),
		ValidArgsFunction: hostCompletion(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := g.open()
			if err != nil {
				return err
			}
			err = in.Reset(args[0])
			if errors.Is(err, vdc.ErrNotFound) {
				return cli.WithCode(cli.ExitNotFound, err)
			}
			return err
		},
	}
}

func stopCmd(g *globals) *cobra.Command {
	var kill bool
	cmd := &cobra.Command{
		Use:   "stop HOST",
		Short: "Power an nspawn machine off (its disk is kept; vdc start boots it again)",
		Long: `Stops an nspawn machine: systemd in it shuts down in order, or with --kill
every process of it is killed at once, as if its power was cut. Its root
tree (its disk) and its network interfaces stay, so 'vdc start HOST' boots
the same machine again.`,
		Args:              cli.ExactArgs(1),
		ValidArgsFunction: hostCompletion(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := g.open()
			if err != nil {
				return err
			}
			err = in.Stop(cmd.Context(), args[0], kill)
			if errors.Is(err, vdc.ErrNotFound) {
				return cli.WithCode(cli.ExitNotFound, err)
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&kill, "kill", false, "kill everything at once (a power cut) instead of shutting down")
	return cmd
}

func startCmd(g *globals) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "start HOST",
		Short: "Boot a stopped nspawn machine again",
		Long: `Boots a machine stopped with 'vdc stop' from its kept root tree, in its
network namespace. With --wait (default 2m; 0 to return at once) it returns
once systemd in it has finished booting.`,
		Args:              cli.ExactArgs(1),
		ValidArgsFunction: hostCompletion(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := g.open()
			if err != nil {
				return err
			}
			err = in.Start(cmd.Context(), args[0])
			if errors.Is(err, vdc.ErrNotFound) {
				return cli.WithCode(cli.ExitNotFound, err)
			}
			if err != nil || wait == 0 {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), wait)
			defer cancel()
			if err := in.WaitBootedHost(ctx, args[0]); err != nil {
				return fmt.Errorf("vdc: %s did not finish booting within %s: %w", args[0], wait, err)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 2*time.Minute, "wait this long for the machine to finish booting (0: do not wait)")
	return cmd
}
