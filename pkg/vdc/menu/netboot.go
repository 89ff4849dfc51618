package menu

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/openneco/neco/pkg/vdc/nspawn"
	"github.com/openneco/neco/pkg/vdc/spec"
)

// A network-booting worker (Menu.Agent with Menu.WorkerDHCP) stands in for
// a bare-metal node that UEFI-boots from sabakan: a container has no
// firmware, so vdc-netboot.service plays its part. It asks for an address
// with a real DHCP client (busybox udhcpc) on eth0; the request crosses the
// ToR's relay to every boot server and sabakan answers from the rack's
// lease range. The lease is used the way a netbooted OS uses the
// firmware's: to reach the sabakan that answered, here for the BGP node
// agent's identity (GET /api/v1/machines?serial=…, the serial from
// /etc/vdc/serial). Once the agent has made node0, the uplinks and both BGP
// sessions, the lease address is dropped (the node's own traffic leaves
// from node0) and node-health-agent joins the boot servers' serf cluster.
//
// The lease address goes on eth0 as a /32 with an on-link route to the
// server only: a /26 would become the primary address of the ToR subnet,
// and BIRD would take it as the BGP session's source address.

// NetbootScript is the worker's boot sequence (/usr/local/lib/vdc/netboot).
const NetbootScript = `#!/bin/sh
# vdc-netboot: DHCP from sabakan through the ToR relay, then the BGP node
# agent with its identity from the sabakan that answered, then
# node-health-agent. Written by vdc; see pkg/vdc/menu/netboot.go.
set -u
log() { echo "vdc-netboot: $*"; }
mkdir -p /run/vdc
ip link set eth0 up
ip link set eth1 up
# Like firmware, try until a boot server answers.
until busybox udhcpc -i eth0 -f -q -n -t 4 -T 2 -s /usr/local/lib/vdc/udhcpc.script; do
	log "no DHCP answer yet; retrying"
	sleep 2
done
. /run/vdc/lease
log "leased $ip from $serverid (router $router)"
echo "SABAKAN_URL=http://$serverid:10080" > /run/vdc/netboot.env
systemctl start bgp-node-agent.service
until curl -sf -o /dev/null http://127.0.0.1:9770/health; do sleep 1; done
# The OS network is up: the firmware's lease is not used any more.
ip route del "$serverid/32" dev eth0 2>/dev/null
ip addr del "$ip/32" dev eth0
node0=$(ip -4 -o addr show dev node0 | sed -n 's/.* inet \([0-9.]*\)\/.*/\1/p' | head -1)
log "network ready: node0 $node0"
if [ -x /usr/local/sbin/node-health-agent ]; then
	echo "NODE_HEALTH_AGENT_OPTS=\"-advertise $node0:7946 -join $(cat /etc/vdc/boot-servers) -serial $(cat /etc/vdc/serial)\"" > /etc/default/node-health-agent
	systemctl start node-health-agent.service
fi
`

// UdhcpcScript records the lease and makes the boot server reachable.
const UdhcpcScript = `#!/bin/sh
case "$1" in
bound|renew)
	ip addr replace "$ip/32" dev "$interface"
	ip route replace "$serverid/32" via "$router" dev "$interface" onlink src "$ip"
	printf 'ip=%s\nmask=%s\nrouter=%s\nserverid=%s\n' "$ip" "$mask" "$router" "$serverid" > /run/vdc/lease
	;;
esac
exit 0
`

// NetbootUnit runs NetbootScript at every boot.
const NetbootUnit = `[Unit]
Description=vdc: network boot stand-in (DHCP from sabakan, then the node agents)
After=systemd-sysctl.service

[Service]
Type=simple
ExecStart=/usr/local/lib/vdc/netboot
# The firmware stand-in retries forever; it ends once the agents run.
Restart=on-failure
RestartSec=2s

[Install]
WantedBy=multi-user.target
`

// NetbootAgentUnit is the BGP node agent of a network-booting worker:
// started by vdc-netboot with the URL of the sabakan that answered DHCP.
const NetbootAgentUnit = `[Unit]
Description=BGP node agent: node address, BIRD with BGP and BFD to both ToRs
ConditionPathExists=/run/vdc/netboot.env

[Service]
EnvironmentFile=/run/vdc/netboot.env
ExecStart=/usr/local/sbin/bgp-node-agent -config /etc/neco/bgp-node-agent.yaml -sabakan-url ${SABAKAN_URL}
KillMode=process
Restart=always
RestartSec=1s
Environment=CANCELLATION_DELAY_SECONDS=0
TimeoutStopSec=15s
`

// HealthAgentUnit is the neco package's node-health-agent unit with the
// program where vdc binds it.
const HealthAgentUnit = `[Unit]
Description=node-health-agent: serf membership and health of this machine
After=network-online.target
ConditionPathExists=/etc/default/node-health-agent

[Service]
Type=simple
EnvironmentFile=/etc/default/node-health-agent
ExecStart=/usr/local/sbin/node-health-agent $NODE_HEALTH_AGENT_OPTS
Restart=always
RestartSec=5s
KillSignal=SIGTERM
TimeoutStopSec=15s
Environment=CANCELLATION_DELAY_SECONDS=0
`

// addNetboot makes n a network-booting worker.
func (p *Plan) addNetboot(n *spec.NspawnNode, name string, bootServers []netip.Addr, o Options) error {
	conf := map[string]any{
		"serial-file":   nspawn.SerialPath,
		"interfaces":    []string{"eth0", "eth1"},
		"bird-realtime": false, // no CAP_SYS_RESOURCE in a container here
	}
	confJSON, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	servers := make([]string, len(bootServers))
	for i, a := range bootServers {
		servers[i] = a.String()
	}
	dir := filepath.Join("netboot", name)
	p.Files[filepath.Join(dir, "bgp-node-agent.yaml")] = append(confJSON, '\n')
	p.Files[filepath.Join(dir, "boot-servers")] = []byte(strings.Join(servers, ",") + "\n")
	shared := map[string]string{
		"netboot/netboot":                   NetbootScript,
		"netboot/udhcpc.script":             UdhcpcScript,
		"netboot/vdc-netboot.service":       NetbootUnit,
		"netboot/bgp-node-agent.service":    NetbootAgentUnit,
		"netboot/node-health-agent.service": HealthAgentUnit,
	}
	for rel, text := range shared {
		p.Files[rel] = []byte(text)
	}
	abs := func(rel string) string { return filepath.Join(o.FilesDir, rel) }
	script := fmt.Sprintf(`#!/bin/sh
# Installs the network boot stand-in into %[1]s's root ($1) before boot.
set -eu
root="$1"
install -D -m 0755 %[2]s "$root/usr/local/lib/vdc/netboot"
install -D -m 0755 %[3]s "$root/usr/local/lib/vdc/udhcpc.script"
install -D -m 0644 %[4]s "$root/etc/systemd/system/vdc-netboot.service"
install -D -m 0644 %[5]s "$root/etc/systemd/system/bgp-node-agent.service"
install -D -m 0644 %[6]s "$root/etc/systemd/system/node-health-agent.service"
install -D -m 0644 %[7]s "$root/etc/neco/bgp-node-agent.yaml"
install -D -m 0644 %[8]s "$root/etc/vdc/boot-servers"
mkdir -p "$root/etc/systemd/system/multi-user.target.wants" "$root/usr/local/sbin"
# The agent runs its own BIRD: the package's daemon stays off.
ln -sf /dev/null "$root/etc/systemd/system/bird.service"
ln -sf ../vdc-netboot.service "$root/etc/systemd/system/multi-user.target.wants/vdc-netboot.service"
touch "$root/usr/local/sbin/bgp-node-agent" "$root/usr/local/sbin/node-health-agent"
`, name, abs("netboot/netboot"), abs("netboot/udhcpc.script"), abs("netboot/vdc-netboot.service"),
		abs("netboot/bgp-node-agent.service"), abs("netboot/node-health-agent.service"),
		abs(filepath.Join(dir, "bgp-node-agent.yaml")), abs(filepath.Join(dir, "boot-servers")))
	initScript := filepath.Join("init", name+".sh")
	p.Files[initScript] = []byte(script)
	n.InitScripts = append(n.InitScripts, abs(initScript))
	n.Binds = append(n.Binds, spec.Bind{Source: o.AgentBinary, Target: "/usr/local/sbin/bgp-node-agent", ReadOnly: true})
	if o.HealthAgentBinary != "" {
		n.Binds = append(n.Binds, spec.Bind{Source: o.HealthAgentBinary, Target: "/usr/local/sbin/node-health-agent", ReadOnly: true})
	}
	return nil
}
