// Command sabactl controls sabakan through its REST API; see docs/sabactl.md.
package main

import "github.com/openneco/neco/pkg/sabactl"

func main() { sabactl.Main() }
