// Command ckecli declares the Kubernetes cluster that the engine (cke)
// maintains and shows what the engine does; see pkg/ckecli.
package main

import (
	"github.com/openneco/neco/pkg/ckecli"
	"github.com/openneco/neco/pkg/cli"
)

func main() {
	cli.Main(ckecli.NewRootCommand())
}
