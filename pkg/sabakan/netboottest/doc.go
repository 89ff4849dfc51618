// Package netboottest tests sabakan's network boot with real protocol peers
// in network namespaces made per run: busybox udhcpc and insomniacslk's
// nclient4 against the DHCP server, directly and through dnsmasq's DHCP
// relay, two servers sharing one etcd, and a UEFI HTTP boot of a QEMU VM
// (TCG, Debian's OVMF and ipxe.efi) that fetches its rendered Ignition.
// The tests need root and the Debian packages of `make setup`; without
// them they skip, and under CI=true they fail.
package netboottest
