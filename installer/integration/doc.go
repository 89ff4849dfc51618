// Package integration builds the boot server's disk image from a real
// neco package and Debian's packages, and boots it in QEMU (TCG) with
// OVMF: it needs root, debootstrap, e2fsprogs, dosfstools, mtools, fdisk,
// QEMU and OVMF (make setup installs them). On a machine without them the
// test skips; in CI (CI=true) it fails instead.
//
// Cost: about 5 min with a cached Debian tree (two builds, three boots);
// the first run on a machine builds the tree with debootstrap (a few
// minutes).
package integration
