// Command pause is the process of a Kubernetes pod sandbox
// (registry.k8s.io/pause): PID 1 of the pod's namespaces, it sleeps forever,
// reaps the zombies reparented to it and exits 0 on SIGINT or SIGTERM. It is
// a Go rewrite of upstream's build/pause/linux/pause.c; `-v` prints its
// version like that program does. Built static by `make pause`, it goes into
// the pause image only, not into the Debian package (so not under cmd/).
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is the pause image tag this program stands for.
const version = "v3.10.2"

func main() {
	for _, a := range os.Args[1:] {
		if strings.EqualFold(a, "-v") {
			fmt.Printf("pause.go %s (openneco)\n", version)
			return
		}
	}
	if os.Getpid() != 1 {
		// Not an error: pause sees use outside of pod sandboxes too.
		fmt.Fprintln(os.Stderr, "Warning: pause should be the first process")
	}

	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig == syscall.SIGCHLD {
			reap()
			continue
		}
		fmt.Fprintf(os.Stderr, "Shutting down, got signal: %v\n", sig)
		os.Exit(0)
	}
}

// reap waits for every child that has exited. Signals coalesce, so one
// SIGCHLD may stand for several children.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
