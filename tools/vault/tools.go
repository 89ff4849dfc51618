//go:build tools

// Package tools pins the Vault server that neco ships and tests against.
// Vault has no Debian package, so it is built from its Go module; it lives in
// its own module so that the main module depends only on
// github.com/hashicorp/vault/api. `make vault` builds it into bin/.
package tools

import (
	_ "github.com/hashicorp/vault"
)
