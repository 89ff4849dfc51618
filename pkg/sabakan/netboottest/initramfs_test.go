package netboottest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// cpioWriter writes a "newc" cpio archive, the initramfs format.
type cpioWriter struct {
	buf bytes.Buffer
	ino int
}

func (c *cpioWriter) entry(name string, mode uint32, data []byte, rdevMajor, rdevMinor int) {
	c.ino++
	fmt.Fprintf(&c.buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.buf.WriteString(name)
	c.buf.WriteByte(0)
	c.pad()
	c.buf.Write(data)
	c.pad()
}

func (c *cpioWriter) pad() {
	for c.buf.Len()%4 != 0 {
		c.buf.WriteByte(0)
	}
}

func (c *cpioWriter) dir(name string)                         { c.entry(name, 0o040755, nil, 0, 0) }
func (c *cpioWriter) file(name string, b []byte, perm uint32) { c.entry(name, 0o100000|perm, b, 0, 0) }
func (c *cpioWriter) char(name string, major, minor int)      { c.entry(name, 0o020600, nil, major, minor) }

func (c *cpioWriter) gzip() ([]byte, error) {
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

// Marker lines the initramfs prints around the Ignition it fetched.
const (
	markerBegin = "NECO-NETBOOT-IGNITION-BEGIN"
	markerEnd   = "NECO-NETBOOT-IGNITION-END"
)

// initScript brings up the NIC with DHCP (from sabakan), downloads the
// Ignition named by coreos.config.url on the kernel command line and
// prints it between markers on the serial console, then powers off.
const initScript = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev 2>/dev/null
for m in $(cat /modules.order); do insmod /lib/modules/$m || echo "insmod $m failed"; done
ip link set lo up
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i+1)); done
ip link set eth0 up
udhcpc -i eth0 -f -q -n -t 10 -T 2 -s /udhcpc.script
url=$(sed -n 's/.*coreos\.config\.url=\([^ ]*\).*/\1/p' /proc/cmdline)
echo "fetching ignition from $url"
if wget -q -O /ignition.json "$url"; then
  echo "` + markerBegin + `"
  cat /ignition.json
  echo
  echo "` + markerEnd + `"
else
  echo "ignition download failed"
fi
poweroff -f
`

const udhcpcScript = `#!/bin/sh
case "$1" in
bound|renew)
  ip addr add "$ip/$mask" dev "$interface"
  [ -n "$router" ] && ip route add default via "$router"
  echo "initramfs: bound $ip/$mask router $router"
  ;;
esac
exit 0
`

// buildInitramfs makes a gzipped cpio with static busybox, the virtio
// network modules of kernel version kver (from /lib/modules) and init.
func buildInitramfs(busybox, kver string) ([]byte, error) {
	c := &cpioWriter{}
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "etc", "lib", "lib/modules"} {
		c.dir(d)
	}
	c.char("dev/console", 5, 1)
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return nil, err
	}
	c.file("bin/busybox", bb, 0o755)
	c.file("init", []byte(initScript), 0o755)
	c.file("udhcpc.script", []byte(udhcpcScript), 0o755)

	modDir := filepath.Join("/lib/modules", kver)
	order, err := moduleOrder(filepath.Join(modDir, "modules.dep"), "virtio_pci", "virtio_net")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, m := range order {
		b, err := os.ReadFile(filepath.Join(modDir, m))
		if err != nil {
			return nil, err
		}
		name := filepath.Base(m)
		c.file("lib/modules/"+name, b, 0o644)
		names = append(names, name)
	}
	c.file("modules.order", []byte(strings.Join(names, "\n")+"\n"), 0o644)
	return c.gzip()
}

// moduleOrder returns the module files to load, dependencies first, for
// the named modules (built-in ones are simply absent from modules.dep).
func moduleOrder(depFile string, modules ...string) ([]string, error) {
	f, err := os.Open(depFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	deps := map[string][]string{} // module file -> its dependencies
	byName := map[string]string{} // module name -> file
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		file, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[file] = strings.Fields(rest)
		base := strings.TrimSuffix(filepath.Base(file), ".ko")
		byName[base] = file
	}
	var order []string
	var visit func(file string)
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
		file, ok := byName[m]
		if !ok {
			continue // built in
		}
		visit(file)
	}
	return order, nil
}
