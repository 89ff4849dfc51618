// Command dc is `make demo`: it builds the default virtual data center on
// this machine, bootstraps neco on it and shows what runs; `make
// demo-stop` removes it. It uses pkg/vdc/necodc, as the dctest suites do.
//
//	go run ./demo/dc up       # build, bootstrap, show (needs root, make etcd vault)
//	go run ./demo/dc status   # show it again
//	go run ./demo/dc down     # remove everything it made
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/openneco/neco/pkg/vdc"
	"github.com/openneco/neco/pkg/vdc/menu"
	"github.com/openneco/neco/pkg/vdc/necodc"
)

// The demo is vdc's default instance, so that plain `vdc list` shows it.
var names = vdc.Names{Instance: vdc.DefaultInstance, StateRoot: vdc.DefaultStateRoot}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: dc up|status|down")
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "demo: the virtual data center needs root")
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "up":
		err = up(ctx)
	case "status":
		err = status(ctx)
	case "down":
		err = down(ctx)
	default:
		err = fmt.Errorf("unknown command %q (want up, status or down)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func up(ctx context.Context) error {
	if _, err := vdc.Open(names); err == nil {
		fmt.Println("The demo data center is already up (make demo-stop removes it). What runs in it:")
		return status(ctx)
	}
	repo, err := os.Getwd()
	if err != nil {
		return err
	}
	start := time.Now()
	version := time.Now().UTC().Format("2006.01.02") + "-1"
	fmt.Printf("Building the default virtual data center and bootstrapping neco %s in it.\n", version)
	fmt.Println("Every command run inside a machine is shown as the `vdc exec` that does the same.")
	// The release lives in the instance's state directory, which
	// make demo-stop removes with everything else.
	buildDir := filepath.Join(names.StateDir(), "files", "build")
	if err := os.MkdirAll(buildDir, 0o755); err != nil {
		return err
	}
	fmt.Println("==> build the neco package (like make deb)")
	b, err := necodc.BuildPackage(ctx, repo, buildDir, version, os.Stdout)
	if err != nil {
		return err
	}
	d, err := necodc.Create(ctx, necodc.Options{Names: names, Menu: menu.Default(), Build: b, Repo: repo, Log: os.Stdout})
	if err != nil {
		return fmt.Errorf("%w (make demo-stop removes what was made)", err)
	}
	if err := d.Bootstrap(ctx, b); err != nil {
		return fmt.Errorf("%w (make demo-stop removes what was made)", err)
	}
	if err := d.WaitReady(ctx, 10*time.Minute); err != nil {
		return fmt.Errorf("%w (make demo-stop removes what was made)", err)
	}
	fmt.Printf("\nThe data center is up: neco bootstrapped and every machine healthy %s after the start.\n", time.Since(start).Round(time.Second))
	nodes, err := d.KubernetesMachines(ctx)
	if err != nil {
		return err
	}
	fmt.Println("\n==> Kubernetes: the boot servers' engine (cke) builds the cluster from the machines in sabakan")
	if err := d.EnableKubernetes(ctx, 3); err != nil {
		return fmt.Errorf("%w (make demo-stop removes what was made)", err)
	}
	if err := d.WaitKubernetes(ctx, len(nodes), 15*time.Minute); err != nil {
		return fmt.Errorf("%w (make demo-stop removes what was made)", err)
	}
	fmt.Printf("==> %d nodes Ready %s after the start; a Deployment across the racks:\n", len(nodes), time.Since(start).Round(time.Second))
	if out, err := d.Apply(ctx, "serve", necodc.ServeManifest); err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	if _, err := d.Kubectl(ctx, "rollout", "status", "deployment/serve", "--timeout", "5m"); err != nil {
		return err
	}
	fmt.Println("==> and one on the pod network (podnet), with its Services:")
	if out, err := d.Apply(ctx, "pods", necodc.PodsManifest); err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	if _, err := d.Kubectl(ctx, "rollout", "status", "deployment/pods", "--timeout", "5m"); err != nil {
		return err
	}
	return status(ctx)
}

func status(ctx context.Context) error {
	repo, _ := os.Getwd()
	d, err := necodc.Open(names, repo, nil)
	if errors.Is(err, vdc.ErrNotFound) {
		return errors.New("no demo data center: run make demo")
	}
	if err != nil {
		return err
	}
	boot0 := d.BootServers()[0]
	run := func(host string, argv ...string) (string, error) {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return d.In.Run(cctx, host, argv...)
	}
	printResult := func(title, host string, argv []string, out string, err error) {
		fmt.Printf("\n== %s   (vdc exec %s -- %s)\n", title, host, strings.Join(argv, " "))
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Print(out)
		if !strings.HasSuffix(out, "\n") {
			fmt.Println()
		}
	}
	show := func(title, host string, argv ...string) {
		out, err := run(host, argv...)
		printResult(title, host, argv, out, err)
	}

	fmt.Println("\n== Hosts   (vdc list)")
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tKIND\tRUNNING\tADDRESSES")
	for _, h := range d.In.Hosts() {
		fmt.Fprintf(w, "%s\t%s\t%v\t%s\n", h.Name, h.Kind, h.Running, strings.Join(h.Addresses, " "))
	}
	w.Flush()

	show("Machines and their states in sabakan", boot0, "sabactl", "machines", "get", "-o", "simple")
	show("neco: boot servers and the last update", boot0, "neco", "status")
	show("etcd members", boot0, "etcdctl", "--endpoints", "https://"+d.Plan.Hosts[boot0].Node0.String()+":2379",
		"--cacert", "/etc/neco/ca-server.crt", "--cert", "/etc/neco/etcd-root.crt", "--key", "/etc/neco/etcd-root.key",
		"member", "list", "-w", "table")

	fmt.Println("\n== BGP sessions   (vdc bgp)")
	sessions, err := d.In.BGPSessions(ctx)
	if err == nil {
		up, byRouter := 0, map[string][2]int{}
		for _, s := range sessions {
			c := byRouter[s.Router]
			c[1]++
			if s.Established() {
				c[0]++
				up++
			}
			byRouter[s.Router] = c
		}
		var routers []string
		for r := range byRouter {
			routers = append(routers, r)
		}
		sort.Strings(routers)
		for _, r := range routers {
			fmt.Printf("%-12s %d/%d established\n", r, byRouter[r][0], byRouter[r][1])
		}
		fmt.Printf("%d of %d sessions established (2 per machine with its ToRs; BFD 400 ms x 5)\n", up, len(sessions))
	} else {
		fmt.Println(err)
	}
	if ws := d.Workers(); len(ws) > 0 {
		w := ws[len(ws)-1]
		show("A worker's default route: ECMP over both ToRs", w, "ip", "route", "show", "default")
		show("A worker's addresses: node0 (/32, its identity) and one link address per ToR", w, "ip", "-4", "-br", "addr")
		show("How it network-booted", w, "journalctl", "-o", "cat", "-u", "vdc-netboot", "-n", "5", "--no-pager")
	}
	show("A ToR's default route: ECMP over the spines", "rack0-tor1", "ip", "route", "show", "default")

	kube := func(title string, args ...string) {
		fmt.Printf("\n== %s   (vdc exec %s -- kubectl %s)\n", title, boot0, strings.Join(args, " "))
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		out, err := d.Kubectl(cctx, args...)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Print(out)
	}
	show("The Kubernetes engine", boot0, "ckecli", "status")
	kube("Kubernetes nodes: three control planes in three racks", "get", "nodes", "-o", "wide", "-L", "topology.kubernetes.io/zone")
	kube("The Deployment's pods, one per rack", "get", "pods", "-l", "app=serve", "-o", "wide")
	if out, err := d.Kubectl(ctx, "get", "pods", "-l", "app=serve", "-o", "jsonpath={.items[*].status.hostIP}"); err == nil {
		for _, ip := range strings.Fields(out) {
			show("A pod answers (its node's name)", boot0, "curl", "-s", "--max-time", "5", fmt.Sprintf("http://%s:%d/hostname", ip, necodc.ServePort))
		}
	}

	kube("The pod network: blocks of the pool default, one or more per node", "get", "addressblocks")
	kube("Pods on the pod network, one per rack", "get", "pods", "-l", "app=pods", "-o", "wide")
	if out, err := d.Kubectl(ctx, "get", "pods", "-l", "app=pods", "-o", "jsonpath={.items[*].status.podIP}"); err == nil {
		for _, ip := range strings.Fields(out) {
			show("A pod answers over the fabric (its name)", boot0, "curl", "-s", "--max-time", "5", "http://"+ip+":8080/hostname")
		}
		if ips := strings.Fields(out); len(ips) > 1 {
			show("A pod asks another (in another rack) through the Service's name", boot0, "curl", "-s", "--max-time", "10",
				"http://"+ips[0]+":8080/dial?request=hostname&protocol=http&host=pods.default.svc.cluster.local&port=80&tries=3")
		}
	}
	// The first worker that runs pods on the pod network (control planes
	// may run none, and then have no table 119).
	table119 := []string{"ip", "route", "show", "table", "119"}
	for _, w := range d.Workers() {
		if out, err := run(w, table119...); err == nil && strings.TrimSpace(out) != "" {
			printResult("A worker's pod blocks (table 119; its BIRD announces them to both ToRs)", w, table119, out, nil)
			break
		}
	}
	show("A ToR's routes to the pods' blocks", "rack0-tor1", "sh", "-c", "ip route | grep -A2 '^10.6[4-7]'")

	fmt.Print(`
== Look inside (bin/vdc; every command needs root)
  bin/vdc list                                  hosts, addresses, processes
  bin/vdc bgp                                   every router's BGP sessions
  bin/vdc exec boot-0 -- neco status            any command in a machine or router
  bin/vdc exec boot-0 -- sabactl machines get   the inventory and states
  bin/vdc exec boot-0 -- ckecli status          the Kubernetes engine (ckecli history, cluster get)
  bin/vdc exec boot-0 -- sh -c 'VAULT_TOKEN=$(neco vault login) ckecli kubernetes issue > /root/.kube/config'
  bin/vdc exec boot-0 -- kubectl get nodes      a kubeconfig, then kubectl (make demo made one already)
  bin/vdc exec boot-0 -- kubectl get addresspools,addressblocks
                                                the pod network's pools and blocks (docs/podnet.md)
  bin/vdc exec rack1-cs1 -- journalctl -u vdc-netboot -u bgp-node-agent
                                                how a worker network-booted
  bin/vdc exec rack0-tor1 -- ip route           a router's view
  bin/vdc shell boot-1                          a login shell in a machine
  bin/vdc console rack0-vm1                     the QEMU machine's serial console (Ctrl-] leaves)
  bin/vdc stop --kill rack2-cs2                 cut a machine's power (vdc start boots it again);
                                                sabakan marks it unreachable within seconds
== Stop
  make demo-stop                                removes everything the demo made (the machines'
                                                Debian tree stays cached in /var/cache/vdc)
`)
	return nil
}

func down(ctx context.Context) error {
	start := time.Now()
	if err := necodc.Destroy(ctx, names); err != nil {
		return err
	}
	fmt.Printf("The demo data center is gone (%s): no namespaces, links, mounts, processes or files left.\n", time.Since(start).Round(100*time.Millisecond))
	return nil
}
