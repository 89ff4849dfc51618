// Package integration runs the Kubernetes engine against real machines: a
// small virtual data center (pkg/vdc) of systemd-nspawn machines on one
// bridge, and a "boot server" network namespace on the same bridge where
// the test starts a real etcd, a real Vault, the cke daemons and runs
// ckecli and kubectl, as an operator would on a boot server. The machines
// get what their set-up would give them (the engine's SSH key, the
// images, a CNI configuration); everything else, from etcd to a Deployment
// that serves, is built by the engine from cluster.yml.
//
// The tests need root, systemd-nspawn, debootstrap and the Kubernetes,
// etcd and Vault binaries of `make kube etcd vault` on PATH; under
// CI=true a missing one is a failure.
package integration
