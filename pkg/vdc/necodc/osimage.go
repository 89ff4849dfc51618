package necodc

import (
	"bytes"
	"os"
	"path/filepath"

	"github.com/openneco/neco/pkg/osimage"
	"github.com/openneco/neco/pkg/sabakan/content"
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

// WriteOSImage writes sabakan's image tar (kernel and initrd.gz) to out,
// from the host's kernel, its modules and a static busybox.
func WriteOSImage(out, busybox string) error {
	kernel, kver, err := osimage.Kernel()
	if err != nil {
		return err
	}
	initrd, err := osimage.Initramfs(busybox, filepath.Join("/lib/modules", kver),
		map[string]string{"init": initScript, "udhcpc.script": udhcpcScript})
	if err != nil {
		return err
	}
	k, err := os.ReadFile(kernel)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := content.WriteImage(&b, k, initrd); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(out, b.Bytes(), 0o644)
}
