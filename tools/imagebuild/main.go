// Command imagebuild builds the container images neco serves from its
// registry (pause, CoreDNS, and the conformance tests' busybox, agnhost,
// nginx, kitten, nautilus, nonroot, nonewprivs, glibc-dns-testing: see
// pkg/images and docs/kubernetes-artifacts.md) into one OCI image layout
// directory and prints each image's name, digest and size. `make images`
// runs it; it is a build-time tool, not shipped in the Debian package.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/openneco/neco/pkg/images"
)

func main() {
	var (
		in         images.Inputs
		testImages string
		nginxRoot  string
		out        string
	)
	flag.StringVar(&in.Pause, "pause", "bin/pause", "static pause binary (make pause)")
	flag.StringVar(&in.Agnhost, "agnhost", "bin/agnhost", "static agnhost binary (make agnhost)")
	flag.StringVar(&testImages, "test-images", "", "test/images of the Kubernetes module (agnhost/porter/localhost.crt and .key, kitten/html, nautilus/html)")
	flag.StringVar(&in.Nonewprivs, "nonewprivs", "bin/nonewprivs", "static nnp binary (test/images/nonewprivs; make images builds it)")
	flag.StringVar(&nginxRoot, "nginx", "build/nginx", "Debian's nginx and nginx-common unpacked, their .deb files in debs/ (make images downloads them)")
	flag.StringVar(&in.CoreDNS, "coredns", "bin/coredns", "static CoreDNS binary (make coredns)")
	flag.StringVar(&in.Busybox, "busybox", "/bin/busybox", "static busybox (Debian's busybox-static)")
	flag.StringVar(&in.BusyboxVersion, "busybox-version", "", "Debian version of -busybox (default: dpkg-query busybox-static)")
	flag.StringVar(&out, "out", "build/images", "OCI image layout directory to write (replaced)")
	in.AgnhostTools = map[string]string{}
	flag.Func("agnhost-tool", "IMAGE-PATH=HOST-PATH: a host executable agnhost's image carries, with its shared libraries (repeatable)", toolFlag(in.AgnhostTools))
	in.DNSTestingTools = map[string]string{}
	flag.Func("dns-testing-tool", "IMAGE-PATH=HOST-PATH: a host executable glibc-dns-testing's image carries, as -agnhost-tool (repeatable)", toolFlag(in.DNSTestingTools))
	flag.Parse()
	if err := run(context.Background(), in, testImages, nginxRoot, out); err != nil {
		fmt.Fprintln(os.Stderr, "imagebuild:", err)
		os.Exit(1)
	}
}

// toolFlag parses IMAGE-PATH=HOST-PATH into tools.
func toolFlag(tools map[string]string) func(string) error {
	return func(v string) error {
		img, host, ok := strings.Cut(v, "=")
		if !ok || img == "" || host == "" {
			return errors.New("want IMAGE-PATH=HOST-PATH")
		}
		if _, dup := tools[img]; dup {
			return fmt.Errorf("%s given twice", img)
		}
		tools[img] = host
		return nil
	}
}

func run(ctx context.Context, in images.Inputs, testImages, nginxRoot, out string) error {
	if testImages == "" {
		return errors.New("-test-images is required: test/images of the Kubernetes module")
	}
	in.AgnhostCert = filepath.Join(testImages, "agnhost", "porter", "localhost.crt")
	in.AgnhostKey = filepath.Join(testImages, "agnhost", "porter", "localhost.key")
	in.KittenHTML = filepath.Join(testImages, "kitten", "html")
	in.NautilusHTML = filepath.Join(testImages, "nautilus", "html")
	in.Nginx = filepath.Join(nginxRoot, "usr", "sbin", "nginx")
	in.NginxMimeTypes = filepath.Join(nginxRoot, "etc", "nginx", "mime.types")
	for _, f := range []struct{ flag, path string }{
		{"-pause", in.Pause}, {"-agnhost", in.Agnhost}, {"-coredns", in.CoreDNS}, {"-busybox", in.Busybox},
		{"-nonewprivs", in.Nonewprivs}, {"-nginx", in.Nginx}, {"-nginx", in.NginxMimeTypes},
		{"-test-images", in.AgnhostCert}, {"-test-images", in.AgnhostKey},
		{"-test-images", filepath.Join(in.KittenHTML, "kitten.jpg")}, {"-test-images", filepath.Join(in.NautilusHTML, "nautilus.jpg")},
	} {
		if st, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("%s: %w", f.flag, err)
		} else if !st.Mode().IsRegular() {
			return fmt.Errorf("%s: %s is not a regular file", f.flag, f.path)
		}
	}
	var err error
	if in.BusyboxVersion == "" {
		if in.BusyboxVersion, err = images.DebianVersion(ctx, "busybox-static"); err != nil {
			return fmt.Errorf("-busybox-version not given: %w", err)
		}
	}
	if in.NginxVersion, err = images.DebianPackageVersion(ctx, filepath.Join(nginxRoot, "debs"), "nginx"); err != nil {
		return fmt.Errorf("-nginx: %w", err)
	}
	if in.BusyboxApplets, err = images.BusyboxApplets(ctx, in.Busybox); err != nil {
		return err
	}

	start := time.Now()
	set, err := images.Build(in)
	if err != nil {
		return err
	}
	entries, err := set.Write(out)
	if err != nil {
		return err
	}
	for _, e := range entries {
		fmt.Printf("%-52s %s %6.1f MiB\n", e.Name, e.Digest, float64(e.Size)/(1<<20))
	}
	fmt.Printf("%s: %s in %.1f s\n", out, humanSize(dirSize(out)), time.Since(start).Seconds())
	return nil
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

func humanSize(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
