// Command coredns is the CoreDNS server that neco's cluster DNS image
// (registry.k8s.io/coredns/coredns) carries: CoreDNS's own coremain with only
// the plugins a Kubernetes cluster DNS uses, in CoreDNS's upstream order. This
// is CoreDNS's documented way of building a custom server; it leaves out the
// cloud (route53, azure, clouddns), etcd, dnstap, geoip and other plugins. It
// lives in its own module so that the main module's dependency graph stays the
// project's own; `make coredns` builds it into bin/.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/any"
	_ "github.com/coredns/coredns/plugin/autopath"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/bufsize"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/debug"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/k8s_external"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metadata"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/minimal"
	_ "github.com/coredns/coredns/plugin/pprof"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/rewrite"
	_ "github.com/coredns/coredns/plugin/template"
	_ "github.com/coredns/coredns/plugin/whoami"
)

// plugins are the directives this server knows (the metrics plugin's
// directive is "prometheus"). Keep it in step with the imports above.
var plugins = map[string]bool{
	"any": true, "autopath": true, "bind": true, "bufsize": true, "cache": true, "debug": true, "errors": true,
	"forward": true, "health": true, "hosts": true, "k8s_external": true, "kubernetes": true, "loadbalance": true,
	"log": true, "loop": true, "metadata": true, "prometheus": true, "minimal": true, "pprof": true, "ready": true,
	"reload": true, "rewrite": true, "template": true, "whoami": true,
}

func init() {
	// Upstream's order filtered to the plugins above: a plugin's place in
	// this list is its place in every server's plugin chain.
	var directives []string
	for _, d := range dnsserver.Directives {
		if plugins[d] {
			directives = append(directives, d)
		}
	}
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
