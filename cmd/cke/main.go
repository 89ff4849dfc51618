// Command cke is the Kubernetes engine. It runs on every boot server; one,
// elected through etcd, builds and maintains the Kubernetes cluster that
// cluster.yml (ckecli cluster set) declares. See docs/cke.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/openneco/neco/pkg/cke/server"
	"github.com/openneco/neco/pkg/cke/storage"
	"github.com/openneco/neco/pkg/daemon"
	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/images"
	necostorage "github.com/openneco/neco/pkg/neco/storage"
)

func main() {
	loadEtcd := necostorage.AddFlags(flag.CommandLine)
	host, _ := os.Hostname()
	cfg := server.Config{}
	flag.StringVar(&cfg.Name, "name", host, "this engine's name in the leader election")
	flag.DurationVar(&cfg.Interval, "interval", time.Minute, "longest time between two reconciliations")
	flag.DurationVar(&cfg.NodeTimeout, "node-timeout", 10*time.Second, "bound of one node's status gathering")
	flag.DurationVar(&cfg.CertTTL, "cert-ttl", 7*24*time.Hour, "lifetime of the certificates issued to components (renewed with a third left)")
	flag.IntVar(&cfg.SessionTTL, "session-ttl", 20, "election session TTL in seconds: how soon another engine takes over from a dead leader")
	kube := flag.String("kube-binary", "", "the Kubernetes executable for the nodes (default: the newest kube-vX.Y.Z in "+server.DefaultKubeDir+")")
	etcdBin := flag.String("etcd-binary", "/usr/bin/etcd", "the etcd executable for the control planes")
	podnetBin := flag.String("podnet-binary", "", "the pod network's program for the nodes (default: podnet beside this executable, if there; without it cluster.yml cannot have a pod_network)")
	flag.StringVar(&cfg.Artifacts.HAProxy, "haproxy", "/usr/sbin/haproxy", "HAProxy on the nodes (the node-local API load balancer)")
	flag.StringVar(&cfg.Artifacts.PauseImage, "pause-image", images.PauseName, "pod sandbox image")
	metrics := flag.String("metrics", "127.0.0.1:10180", "address of /health and /metrics")
	flag.Parse()

	etcdCfg, err := loadEtcd()
	if err == nil && *kube == "" {
		*kube, err = server.FindKube(server.DefaultKubeDir)
	}
	if err == nil {
		cfg.Artifacts.Kube, err = server.LocalBinary(filepath.Base(*kube), *kube)
	}
	if err == nil {
		cfg.Artifacts.Etcd, err = server.LocalBinary("etcd", *etcdBin)
	}
	if err == nil {
		cfg.Artifacts.Podnet, err = server.FindPodnet(*podnetBin)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cke:", err)
		os.Exit(2)
	}
	etcdCfg.Prefix = storage.DefaultPrefix

	daemon.Run(func(ctx context.Context) error {
		client, err := etcdutil.New(etcdCfg)
		if err != nil {
			return err
		}
		defer client.Close()
		st := storage.New(client)
		s := server.New(st, cfg)
		reg := daemon.NewRegistry()
		s.Register(reg)
		if _, err := (daemon.Server{Addr: *metrics, Handler: daemon.MetricsMux(reg, st.Ping)}).Start(nil); err != nil {
			return err
		}
		return s.Run(ctx)
	})
}
