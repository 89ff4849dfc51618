// Command neco bootstraps and operates neco boot servers; see docs/neco.md.
package main

import (
	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/necocli"
)

func main() {
	cli.Main(necocli.NewRootCommand())
}
