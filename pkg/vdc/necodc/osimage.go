package necodc

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// The OS image the QEMU machines boot: the host's Debian kernel and a
// small initramfs (static busybox and the virtio network modules) that
// stands in for the real OS. Its init takes a DHCP lease from sabakan,
// downloads the Ignition that sabakan rendered for the machine (the URL
// of coreos.config.url on the kernel command line) and prints it between
// markers on the serial console, then idles. What a real OS would then do
// with the Ignition (the BGP node agent, the health agent) the nspawn
// machines show.

// Markers around the Ignition the initramfs printed.
const (
	IgnitionBegin = "NECO-OS-IGNITION-BEGIN"
	IgnitionEnd   = "NECO-OS-IGNITION-END"
	// OSReady is printed once the Ignition was fetched.
	OSReady = "NECO-OS-READY"
)

const initScript = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev 2>/dev/null
# Kernel messages would interleave with what this prints on the console.
echo 1 > /proc/sys/kernel/printk
for m in $(cat /modules.order); do insmod /lib/modules/$m 2>/dev/null; done
ip link set lo up
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i+1)); done
ip link set eth0 up
until udhcpc -i eth0 -f -q -n -t 5 -T 2 -s /udhcpc.script; do sleep 2; done
url=$(sed -n 's/.*coreos\.config\.url=\([^ ]*\).*/\1/p' /proc/cmdline)
echo "neco-os: fetching Ignition from $url"
until wget -q -O /ignition.json "$url"; do sleep 2; done
echo "` + IgnitionBegin + `"
cat /ignition.json
echo
echo "` + IgnitionEnd + `"
echo "` + OSReady + ` $(cat /sys/class/dmi/id/product_serial)"
while :; do sleep 3600; done
`

const udhcpcScript = `#!/bin/sh
case "$1" in
bound|renew)
	ip addr add "$ip/$mask" dev "$interface"
	[ -n "$router" ] && ip route add default via "$router"
	echo "neco-os: leased $ip/$mask from $serverid"
	;;
esac
exit 0
`

// DebianKernel returns the newest Debian kernel installed on this host
// (linux-image-amd64) and its version.
func DebianKernel() (path, version string, err error) {
	files, _ := filepath.Glob("/boot/vmlinuz-*")
	sort.Strings(files)
	if len(files) == 0 {
		return "", "", errors.New("necodc: no Debian kernel in /boot (make setup installs linux-image-amd64)")
	}
	path = files[len(files)-1]
	return path, strings.TrimPrefix(filepath.Base(path), "vmlinuz-"), nil
}

// WriteOSImage writes sabakan's image tar (kernel and initrd.gz) to out,
// from the host's kernel, its modules and a static busybox.
func WriteOSImage(out, busybox string) error {
	kernel, kver, err := DebianKernel()
	if err != nil {
		return err
	}
	initrd, err := buildInitramfs(busybox, filepath.Join("/lib/modules", kver))
	if err != nil {
		return err
	}
	k, err := os.ReadFile(kernel)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range []struct {
		name string
		data []byte
	}{{"kernel", k}, {"initrd.gz", initrd}} {
		hdr := &tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(out, b.Bytes(), 0o644)
}

// buildInitramfs makes a gzipped newc cpio archive.
func buildInitramfs(busybox, modDir string) ([]byte, error) {
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return nil, err
	}
	if !isStatic(bb) {
		return nil, fmt.Errorf("necodc: %s is dynamically linked: the initramfs needs a static busybox (busybox-static)", busybox)
	}
	c := &cpio{}
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "etc", "lib", "lib/modules"} {
		c.entry(d, 0o040755, nil, 0, 0)
	}
	c.entry("dev/console", 0o020600, nil, 5, 1)
	c.entry("bin/busybox", 0o100755, bb, 0, 0)
	c.entry("init", 0o100755, []byte(initScript), 0, 0)
	c.entry("udhcpc.script", 0o100755, []byte(udhcpcScript), 0, 0)
	order, err := moduleOrder(filepath.Join(modDir, "modules.dep"), "virtio_pci", "virtio_net")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, m := range order {
		data, err := os.ReadFile(filepath.Join(modDir, m))
		if err != nil {
			return nil, err
		}
		name := filepath.Base(m)
		c.entry("lib/modules/"+name, 0o100644, data, 0, 0)
		names = append(names, name)
	}
	c.entry("modules.order", 0o100644, []byte(strings.Join(names, "\n")+"\n"), 0, 0)
	c.entry("TRAILER!!!", 0, nil, 0, 0)
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := zw.Write(c.buf.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// isStatic reports whether an ELF executable has no program interpreter.
func isStatic(elf []byte) bool {
	return !bytes.Contains(elf[:min(len(elf), 4096)], []byte("/lib64/ld-linux"))
}

// cpio writes the newc format the kernel unpacks.
type cpio struct {
	buf bytes.Buffer
	ino int
}

func (c *cpio) entry(name string, mode uint32, data []byte, rdevMajor, rdevMinor int) {
	c.ino++
	nlink := 1
	if mode&0o040000 != 0 {
		nlink = 2
	}
	fmt.Fprintf(&c.buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.buf.WriteString(name)
	c.buf.WriteByte(0)
	c.pad()
	c.buf.Write(data)
	c.pad()
}

func (c *cpio) pad() {
	for c.buf.Len()%4 != 0 {
		c.buf.WriteByte(0)
	}
}

// moduleOrder returns the module files to load, dependencies first, for
// the named modules (built-in ones are absent from modules.dep).
func moduleOrder(depFile string, modules ...string) ([]string, error) {
	f, err := os.Open(depFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	deps := map[string][]string{}
	byName := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		file, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[file] = strings.Fields(rest)
		byName[strings.TrimSuffix(filepath.Base(file), ".ko")] = file
	}
	var order []string
	var visit func(string)
	visit = func(file string) {
		if slices.Contains(order, file) {
			return
		}
		for _, d := range deps[file] {
			visit(d)
		}
		order = append(order, file)
	}
	for _, m := range modules {
		if file, ok := byName[m]; ok {
			visit(file)
		}
	}
	return order, sc.Err()
}
