// Package integration tests podnet end to end on this machine: the real
// podnet program as the node daemon in a network namespace of its own
// (the "node"), a real API server (kubetest) with podnet's custom
// resources and the engine's permissions for it, and the program run as a
// CNI plugin the way a container runtime runs it, against real pod network
// namespaces. It needs root, ip and the API server's binaries; under
// CI=true their absence is a failure.
package integration
