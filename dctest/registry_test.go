//go:build dctest

package dctest

import (
	"encoding/json"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v3 "github.com/coreos/ignition/v2/config/v3_5/types"
	"github.com/vincent-petithory/dataurl"

	"github.com/openneco/neco/pkg/bootserver"
	"github.com/openneco/neco/pkg/images"
	"github.com/openneco/neco/pkg/vdc/necodc"
)

// TestRegistry checks the release's container images on the bootstrapped
// data center, as docs/kubernetes-artifacts.md describes them:
//
//   - every boot server's registry serves every image of the package, with
//     the digest it was built with (neco-worker pushed them);
//   - the public listener refuses writes from a node;
//   - (the time each worker took to push is logged);
//   - a node's containerd, configured with nothing but the files of its
//     Ignition (hosts.toml, the CA), pulls registry.k8s.io/... from the
//     boot servers, and keeps pulling with the first boot server's registry
//     stopped.
func TestRegistry(t *testing.T) {
	d := necoDC(t)
	want, err := images.List(filepath.Join("..", "build", "images"))
	if err != nil {
		t.Fatal(err)
	}
	h := hosts{t, d.In, 3 * time.Minute}
	boots := d.BootServers()
	node := d.Workers()[0]
	addr := func(host string) string {
		return net.JoinHostPort(d.Plan.Hosts[host].Node0.String(), strconv.Itoa(bootserver.RegistryPort))
	}

	// The node trusts the registries with the CA of its Ignition.
	installIgnitionFiles(t, d, h, node, "/etc/containerd/certs.d/registry.k8s.io/hosts.toml", "/etc/neco/registry-ca.crt")

	t.Run("every boot server serves every image", func(t *testing.T) {
		for _, b := range boots {
			for _, e := range want {
				ref, err := images.MirrorRef(e.Name, addr(b))
				if err != nil {
					t.Fatal(err)
				}
				repo, tag, _ := strings.Cut(strings.TrimPrefix(ref, addr(b)+"/"), ":")
				// From a node, over TLS with the CA of its Ignition.
				out, err := h.run(node, "curl", "-sf", "--cacert", "/etc/neco/registry-ca.crt", "-I",
					"-H", "Accept: application/vnd.oci.image.manifest.v1+json",
					"https://"+addr(b)+"/v2/"+repo+"/manifests/"+tag)
				if err != nil || !strings.Contains(strings.ToLower(out), "docker-content-digest: "+e.Digest.String()) {
					t.Errorf("%s on %s: %v\n%s", e.Name, b, err, out)
				}
			}
		}
	})

	t.Run("push time", func(t *testing.T) {
		// What each worker's registry-images step logged.
		for _, b := range boots {
			out, err := h.run(b, "sh", "-c", "journalctl -u neco-worker -o cat --no-pager | grep -m1 \"images are in this boot server's registry\"")
			if err != nil || !strings.Contains(out, "elapsed") {
				t.Errorf("%s: no registry-images step in the worker's log: %v %s", b, err, out)
				continue
			}
			t.Logf("%s: %s", b, strings.TrimSpace(out))
		}
	})

	t.Run("nodes cannot push", func(t *testing.T) {
		out, _ := h.run(node, "curl", "-s", "--cacert", "/etc/neco/registry-ca.crt", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
			"https://"+addr(boots[0])+"/v2/pause/blobs/uploads/")
		if out != "405" {
			t.Errorf("a node's upload start answered %q, want 405", out)
		}
	})

	t.Run("containerd pulls through the mirrors", func(t *testing.T) {
		pull := func(ref string) time.Duration {
			t.Helper()
			h.run(node, "ctr", "-n", "k8s.io", "images", "rm", "--sync", ref)
			start := time.Now()
			h.must(node, "ctr", "-n", "k8s.io", "images", "pull", "--hosts-dir", "/etc/containerd/certs.d", ref)
			return time.Since(start)
		}
		digestOf := func(ref string) string {
			out := h.must(node, "ctr", "-n", "k8s.io", "images", "ls", "name=="+ref)
			return out
		}
		var agnhost, pause images.Entry
		for _, e := range want {
			switch {
			case strings.Contains(e.Name, "/agnhost:"):
				agnhost = e
			case strings.Contains(e.Name, "/pause:"):
				pause = e
			}
		}
		took := pull(pause.Name)
		if out := digestOf(pause.Name); !strings.Contains(out, pause.Digest.String()) {
			t.Errorf("pulled %s:\n%s", pause.Name, out)
		}
		t.Logf("pulled %s in %s", pause.Name, took.Round(time.Millisecond))

		// The first mirror down: the next one serves.
		h.must(boots[0], "systemctl", "stop", "neco-registry")
		defer h.must(boots[0], "systemctl", "start", "neco-registry")
		took = pull(agnhost.Name)
		if out := digestOf(agnhost.Name); !strings.Contains(out, agnhost.Digest.String()) {
			t.Errorf("pulled %s with %s's registry stopped:\n%s", agnhost.Name, boots[0], out)
		}
		t.Logf("pulled %s (%d bytes) with %s's registry stopped in %s", agnhost.Name, agnhost.Size, boots[0], took.Round(time.Millisecond))
	})
}

// installIgnitionFiles writes paths into host as its Ignition (rendered by
// sabakan for the host's machine, the release's template) has them.
func installIgnitionFiles(t *testing.T, d *necodc.DC, h hosts, host string, paths ...string) {
	t.Helper()
	op := d.BootServers()[0]
	serial := d.Plan.Hosts[host].Serial
	url := "http://" + d.Plan.Hosts[op].Node0.String() + ":10080/api/v1/boot/ignitions/" + serial + "/" + necoV1
	raw := h.must(host, "curl", "-sf", url)
	var cfg v3.Config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatalf("the Ignition of %s: %v\n%s", serial, err, raw)
	}
	for _, p := range paths {
		found := false
		for _, f := range cfg.Storage.Files {
			if f.Path != p || f.Contents.Source == nil {
				continue
			}
			du, err := dataurl.DecodeString(*f.Contents.Source)
			if err != nil {
				t.Fatalf("%s in the Ignition of %s: %v", p, serial, err)
			}
			h.must(host, "sh", "-c", `mkdir -p "$(dirname "$1")" && printf %s "$2" > "$1"`, "sh", p, string(du.Data))
			found = true
		}
		if !found {
			t.Fatalf("the Ignition of %s has no %s", serial, p)
		}
	}
}
