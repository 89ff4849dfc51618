package netboottest

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
