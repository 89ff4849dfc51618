// Package registry is neco-registry, the OCI distribution registry every
// boot server runs (docs/registry.md). It embeds the CNCF distribution
// registry (github.com/distribution/distribution/v3) with its filesystem
// storage driver only, behind three listeners:
//
//   - public (default 0.0.0.0:5000, TLS): read-only, GET and HEAD of the
//     /v2/ API; every other method is answered 405 with an OCI error body
//     before the request reaches storage. Nodes pull from it.
//   - write (default 127.0.0.1:5001, plain HTTP, loopback only): the whole
//     API, pushes included, for the boot server's own neco-worker.
//   - metrics (default 0.0.0.0:5002): /health and /metrics.
//
// The package is the daemon only; the addresses and the certificate that
// other programs need are in pkg/bootserver (RegistryWriteURL,
// RegistryPort, RegistryHealthURL, EnsureRegistryCert), which does not link
// the registry.
package registry
