// Package nodeexec is the Kubernetes engine's only way to reach nodes: SSH.
//
// Dial opens one authenticated connection to a node; a Client runs
// commands on it (Run), writes small files atomically (WriteFile) and
// streams large ones with an end-to-end sha256 check (Install). A Pool keeps
// one Client per node address for the engine's loop and dials again when a
// connection broke.
//
// Host keys are trusted on first use and pinned in a HostKeyStore (the
// engine keeps them in etcd; MemoryHostKeys serves tests and tools); a node
// that later offers another key is refused with a HostKeyChangedError.
//
// Commands run through the login user's shell, which must be a POSIX
// shell; the file operations need coreutils (mktemp, stat, sha256sum,
// sync) on the node. Everything a node sends back is bounded, so a broken
// or hostile node cannot exhaust the engine's memory.
package nodeexec
