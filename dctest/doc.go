// Package dctest holds the large tests of the whole system: suites that
// build the default virtual data center with vdc and check it end to end.
// They need root and take minutes, so they build only with the dctest tag:
//
//	make dctest                 # every suite
//	make dctest SUITE=Topology  # one suite (a go test -run pattern)
//
// Each suite creates its own instance and destroys it, asserting that
// nothing is left behind. See docs/dctest.md.
package dctest
