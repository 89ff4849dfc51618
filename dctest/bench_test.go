//go:build dctest

package dctest

import (
	"context"
	"io"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/vdc/menu"
	"github.com/openneco/neco/pkg/vdc/rootfs"
)

// BenchmarkRootfs builds the machines' root tree with debootstrap into an
// empty cache (cold), asks for it again (cached), then rebuilds it with the
// downloaded packages still cached (rebuild).
//
//	go test -tags dctest -run '^$' -bench Rootfs -benchtime 1x ./dctest/
func BenchmarkRootfs(b *testing.B) {
	requireHost(b)
	s := rootfs.Spec{Suite: "bookworm", Variant: "minbase", Packages: menu.RootfsPackages()}
	for b.Loop() {
		cache := b.TempDir()
		ctx := context.Background()
		start := time.Now()
		if _, built, err := rootfs.Ensure(ctx, cache, s, io.Discard); err != nil || !built {
			b.Fatalf("cold build: built=%v %v", built, err)
		}
		cold := time.Since(start)
		start = time.Now()
		dir, built, err := rootfs.Ensure(ctx, cache, s, io.Discard)
		if err != nil || built {
			b.Fatalf("cached: built=%v %v", built, err)
		}
		cached := time.Since(start)
		// The tree gone, the downloaded packages kept (a changed package
		// list costs about this).
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		if _, built, err := rootfs.Ensure(ctx, cache, s, io.Discard); err != nil || !built {
			b.Fatalf("rebuild: built=%v %v", built, err)
		}
		b.ReportMetric(cold.Seconds(), "cold-s")
		b.ReportMetric(time.Since(start).Seconds(), "rebuild-s")
		b.ReportMetric(cached.Seconds()*1000, "cached-ms")
	}
}

// BenchmarkCreate creates, boots, converges and destroys the small and the
// default topology (without the QEMU machine, whose firmware would only
// spin), the latter also with the BGP node agent in every machine (then
// "converged" includes every node session), and reports the phases. Root
// trees come from the cache.
//
//	go test -tags dctest -run '^$' -bench Create -benchtime 3x ./dctest/
func BenchmarkCreate(b *testing.B) {
	for _, name := range []string{"small", "default", "default-agent"} {
		b.Run(name, func(b *testing.B) {
			m, _ := menu.Named(strings.TrimSuffix(name, "-agent"))
			m.QEMUNodes = 0
			m.Agent = strings.HasSuffix(name, "-agent")
			if name == "small" {
				m.BootServers = true
			}
			fig := map[string][]float64{}
			add := func(unit string, v float64) { fig[unit] = append(fig[unit], v) }
			for b.Loop() {
				d := newDC(b, m)
				add("create-s", d.created.Total.Seconds())
				add("boot-median-s", median(d.booted).Seconds())
				add("boot-max-s", maxOf(d.booted).Seconds())
				add("converged-s", d.bgpReady.Seconds())
				add("peak-pss-MiB", float64(d.peakPSS>>20))
				start := time.Now()
				d.destroy()
				d.destroyed = true
				add("destroy-s", time.Since(start).Seconds())
			}
			// Medians over the iterations: this machine is shared and noisy.
			for unit, vs := range fig {
				sort.Float64s(vs)
				b.ReportMetric(vs[len(vs)/2], unit)
			}
			b.ReportMetric(float64(m.Machines()), "machines")
		})
	}
}
