package necodc

import (
	"bytes"
	"os"
	"path/filepath"

	"github.com/openneco/neco/pkg/osimage"
	"github.com/openneco/neco/pkg/sabakan/content"
)

// The OS image the QEMU machines boot: the host's Debian kernel and a
// small initramfs that stands in for the real OS. Its init takes a DHCP
// lease from sabakan, downloads the Ignition that sabakan rendered for the
// machine (the URL of coreos.config.url on the kernel command line) and
// prints it between markers on the serial console. Then it does what that
// Ignition has a real node do, as the network-booting nspawn workers do
// (pkg/vdc/menu/netboot.go): it downloads the BGP node agent from the
// sabakan asset the Ignition names and runs it with its identity from that
// sabakan (node0, both uplinks, BIRD with BGP and BFD to both ToRs); once
// the agent is healthy it drops the lease address and runs
// node-health-agent, which joins the boot servers' serf cluster at node0
// (the address the state setter knows the machine by), so that the
// machine becomes healthy in sabakan.
//
// The initramfs (zstd-compressed: the kernel unpacks it faster than gzip)
// holds a static busybox, the kernel modules of the NICs
// and of node0 (dummy), BIRD (the host's, with its shared libraries) and
// node-health-agent. There is no systemd: init runs the two agents itself,
// each again whenever it exits (as systemd's Restart=always), and
// node-health-agent's -health-command asks /bin/failed-services which of
// them is not running.

// Markers around the Ignition the initramfs printed.
const (
	IgnitionBegin = "NECO-OS-IGNITION-BEGIN"
	IgnitionEnd   = "NECO-OS-IGNITION-END"
	// OSReady is printed once the Ignition was fetched.
	OSReady = "NECO-OS-READY"
	// OSNetworkReady is printed, followed by the serial and node0, once
	// the BGP node agent is healthy.
	OSNetworkReady = "NECO-OS-NETWORK-READY"
	// OSMember is printed, followed by the serial, when node-health-agent
	// starts.
	OSMember = "NECO-OS-HEALTH-AGENT"
)

// BIRD is the BIRD 2 of the OS image: the host's (bird2), which also runs
// the routers.
const BIRD = "/usr/sbin/bird"

// Where the programs are in the OS image.
const (
	osBIRD        = "/usr/sbin/bird"
	osHealthAgent = "/usr/sbin/node-health-agent"
)

const initScript = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/sbin:/opt/neco/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /run /var/log /var/lib /opt/neco/bin
# Kernel messages would interleave with what this prints on the console.
echo 1 > /proc/sys/kernel/printk
for m in $(cat /modules.order); do insmod /lib/modules/$m 2>/dev/null; done
ip link set lo up
i=0; while [ ! -e /sys/class/net/eth1 ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i+1)); done
ip link set eth0 up
ip link set eth1 up
serial=$(cat /sys/class/dmi/id/product_serial)
# The Ignition names every node after its serial; so is its serf member.
hostname "$serial"
until udhcpc -i eth0 -f -q -n -t 5 -T 2 -s /udhcpc.script; do sleep 2; done
. /run/lease
url=$(sed -n 's/.*coreos\.config\.url=\([^ ]*\).*/\1/p' /proc/cmdline)
sabakan=${url%%/api/v1/*}
server=${sabakan#*://}; server=${server%%[:/]*}
# The lease is a /32 with on-link routes to the boot servers used, no
# default route: the BGP node agent makes the node's routes.
ip route replace "$server/32" via "$router" dev eth0 onlink src "$ip"
echo "neco-os: fetching Ignition from $url"
until wget -q -O /ignition.json "$url"; do sleep 2; done
echo "` + IgnitionBegin + `"
cat /ignition.json
echo
echo "` + IgnitionEnd + `"
echo "` + OSReady + ` $serial"

# service NAME CMD...: runs CMD, and again 2 s after it exits (systemd's
# Restart=always); its output goes to /var/log/NAME.log.
service() {
	name=$1; shift
	echo "$name" >> /run/services
	( while :; do
		"$@" >> /var/log/$name.log 2>&1
		echo "neco-os: $name exited ($?); restarting; its log ends with:"
		tail -n 5 /var/log/$name.log
		sleep 2
	done ) &
}

# What the Ignition installs: the BGP node agent from sabakan's asset.
agent=$(tr -d ' \n' < /ignition.json | grep -o 'https*://[^"]*/api/v1/assets/bgp-node-agent' | head -n 1)
echo "neco-os: downloading $agent"
until wget -q -O /opt/neco/bin/bgp-node-agent "$agent" 2>/dev/null; do sleep 2; rm -f /opt/neco/bin/bgp-node-agent; done
chmod 0755 /opt/neco/bin/bgp-node-agent
# The settings of the Ignition's /etc/neco/bgp-node-agent.yml.
service bgp-node-agent bgp-node-agent -sabakan-url "$sabakan" -serial "$serial" \
	-state-dir /var/lib/bgp-node-agent -interfaces eth0,eth1 -listen :9770 -bird ` + osBIRD + `
until wget -q -O /dev/null http://127.0.0.1:9770/health 2>/dev/null; do sleep 1; done
# The boot servers, as sabakan lists them, to join.
boots=
while [ -z "$boots" ]; do
	boots=$(wget -q -O - "$sabakan/api/v1/machines?role=boot" 2>/dev/null | tr -d ' \n' |
		grep -o '"ipv4":\["[0-9.]*"' | sed 's/.*"\([0-9.]*\)"$/\1/' | tr '\n' ',')
	boots=${boots%,}
	[ -n "$boots" ] || sleep 2
done
# The node's network is up: the lease is not used any more.
ip route del "$server/32" dev eth0 2>/dev/null
ip addr del "$ip/32" dev eth0
node0=$(ip -4 -o addr show dev node0 | sed -n 's/.* inet \([0-9.]*\)\/.*/\1/p' | head -n 1)
echo "` + OSNetworkReady + ` $serial $node0"
service node-health-agent node-health-agent -advertise "$node0:7946" -join "$boots" -serial "$serial" \
	-health-command /bin/failed-services
echo "` + OSMember + ` $serial joining $boots"
while :; do sleep 3600; done
`

// failedServices is node-health-agent's -health-command: the services
// init started whose program is not running.
const failedServices = `#!/bin/sh
for s in $(cat /run/services); do pidof "$s" > /dev/null || echo "$s"; done
exit 0
`

const udhcpcScript = `#!/bin/sh
case "$1" in
bound|renew)
	ip addr replace "$ip/32" dev "$interface"
	ip route replace "$serverid/32" via "$router" dev "$interface" onlink src "$ip"
	printf 'ip=%s\nmask=%s\nrouter=%s\nserverid=%s\n' "$ip" "$mask" "$router" "$serverid" > /run/lease
	echo "neco-os: leased $ip/$mask from $serverid"
	;;
esac
exit 0
`

// OSImageModules are the kernel modules the OS image loads: the NICs',
// node0's (dummy), and the netlink families the BGP node agent's netlink
// library opens besides the routing one (xfrm_user, nfnetlink). A full OS
// loads these on demand; the initramfs has no modprobe.
var OSImageModules = append(append([]string{}, osimage.NetworkModules...), "dummy", "xfrm_user", "nfnetlink")

// WriteOSImage writes sabakan's image tar (kernel and initrd.gz) to out,
// from the host's kernel, its modules, a static busybox, BIRD and the
// node-health-agent program healthAgent (static).
func WriteOSImage(out, busybox, healthAgent string) error {
	kernel, kver, err := osimage.Kernel()
	if err != nil {
		return err
	}
	initrd, err := osimage.Spec{
		Busybox: busybox,
		ModDir:  filepath.Join("/lib/modules", kver),
		Modules: OSImageModules,
		Scripts: map[string]string{"init": initScript, "udhcpc.script": udhcpcScript, "bin/failed-services": failedServices},
		Programs: map[string]string{
			osBIRD[1:]:        BIRD,
			osHealthAgent[1:]: healthAgent,
		},
		// Six times faster to unpack than gzip, which saves seconds of
		// the QEMU machine's boot under TCG.
		Zstd: true,
	}.Build()
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
