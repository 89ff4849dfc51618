// Command neco-installer builds the boot server's disk image and writes
// first-boot seeds into it; see docs/installer.md.
package main

import (
	"github.com/openneco/neco/installer"
	"github.com/openneco/neco/pkg/cli"
)

func main() { cli.Main(installer.NewRootCommand()) }
