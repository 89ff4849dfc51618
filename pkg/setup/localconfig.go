package setup

import (
	"net"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/openneco/neco/pkg/bootserver"
	"github.com/openneco/neco/pkg/fileutil"
	"github.com/openneco/neco/pkg/neco/storage"
)

// WriteLocalConfig writes /etc/neco/config.yml (etcd as root over mTLS,
// read by neco and the CD daemons), /etc/neco/rack and the cluster
// description.
func WriteLocalConfig(c *bootserver.Cluster, me bootserver.Server, servers []bootserver.Server, p bootserver.Paths) error {
	cfg := bootserver.EtcdConfig(c, servers, p, storage.DefaultPrefix)
	data, err := yaml.Marshal(map[string]any{"etcd": cfg})
	if err != nil {
		return err
	}
	if err := fileutil.WriteAtomic(p.Config, data, 0o600); err != nil {
		return err
	}
	if err := fileutil.WriteAtomic(p.Rack, []byte(strconv.Itoa(me.LRN)+"\n"), 0o644); err != nil {
		return err
	}
	full := *c
	full.Servers = servers
	data, err = yaml.Marshal(&full)
	if err != nil {
		return err
	}
	return fileutil.WriteAtomic(p.ClusterDef, data, 0o644)
}

// HealthAgentPort is the serf port of node-health-agent on a boot server.
const HealthAgentPort = 7946

// WriteHealthAgentDefaults writes the options of this server's
// node-health-agent (the unit the package ships reads them): advertise
// the server's node address, join the other boot servers. Machines that
// join the serf cluster later name the boot servers too.
func WriteHealthAgentDefaults(me bootserver.Server, servers []bootserver.Server, p bootserver.Paths) error {
	var join []string
	for _, s := range servers {
		if s.LRN != me.LRN {
			join = append(join, s.Address)
		}
	}
	opts := "-advertise " + net.JoinHostPort(me.Address, strconv.Itoa(HealthAgentPort))
	if len(join) > 0 {
		opts += " -join " + strings.Join(join, ",")
	}
	data := "# Written by neco setup (or neco join): node-health-agent of boot server " + strconv.Itoa(me.LRN) + ".\n" +
		"NODE_HEALTH_AGENT_OPTS=\"" + opts + "\"\n"
	return fileutil.WriteAtomic(p.HealthAgentDefaults, []byte(data), 0o644)
}
