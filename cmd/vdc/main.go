// Command vdc builds, inspects and destroys a virtual data center on this
// machine. See docs/dctest.md.
package main

import (
	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/vdc/vdccli"
)

func main() { cli.Main(vdccli.NewRoot()) }
