// Package version holds the release version, stamped at build time with
// -ldflags "-X github.com/openneco/neco/pkg/version.Version=...".
package version

// Version is the neco release (YYYY.MM.DD-N) this binary belongs to.
var Version = "0.0.0-dev"
