// Package dctest holds the large tests of the whole system: suites that
// build the default virtual data center with vdc, bootstrap neco in it,
// break it, operate it and upgrade it, end to end. They need root and take
// minutes, so they build only with the dctest tag:
//
//	make dctest                 # every suite
//	make dctest SUITE=Upgrade   # one suite (a go test -run pattern)
//
// The neco suites (bootstrap, network faults, functions, upgrade) share one
// bootstrapped data center, made by the first of them that runs; the
// others build their own. Every data center is destroyed with a check that
// nothing is left behind. See docs/dctest.md.
package dctest
