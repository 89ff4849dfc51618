package storage

import (
	"strconv"
	"strings"
)

// Keys and prefixes under /neco/ of continuous delivery.
const (
	// Election prefixes (concurrency.Election appends "/").
	LeaderUpdater  = "leader/updater"
	LeaderContents = "leader/contents"
	LockEtcd       = "leader/etcd-restart" // mutex: one etcd restart at a time

	// InfoBootServers + LRN registers a boot server; bootstrap writes it.
	InfoBootServers = "info/bootservers/"
	// InfoRelease holds the latest release the updater found.
	InfoRelease = "info/neco-release"
	// StatusCurrent holds the UpdateRequest.
	StatusCurrent = "status/current"
	// StatusBootServers + LRN holds a worker's UpdateStatus.
	StatusBootServers = "status/bootservers/"
	// Contents + name records a cluster-wide upload (ContentsRecord).
	Contents = "contents/"
	// Config + key holds an operator setting (neco.ConfigKeys).
	Config = "config/"
)

// ContentsSabakan records the upload of sabakan's contents.
const ContentsSabakan = "sabakan"

// BootServerKey is the registration key of a boot server.
func BootServerKey(lrn int) string { return InfoBootServers + strconv.Itoa(lrn) }

// StatusKey is the status key of a boot server's worker.
func StatusKey(lrn int) string { return StatusBootServers + strconv.Itoa(lrn) }

// ContentsKey is the record key of an upload.
func ContentsKey(name string) string { return Contents + name }

// ConfigKey is the key of a config setting.
func ConfigKey(name string) string { return Config + name }

// lrnOf parses the LRN at the end of key after prefix.
func lrnOf(key, prefix string) (int, bool) {
	s, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || strconv.Itoa(n) != s {
		return 0, false
	}
	return n, true
}

// InstallPrefix + LRN + "/services/" + unit records the neco version whose
// binaries the unit was last (re)started with by a worker step.
const InstallPrefix = "install/"

// ServiceKey is the restart record of unit on boot server lrn.
func ServiceKey(lrn int, unit string) string {
	return InstallPrefix + strconv.Itoa(lrn) + "/services/" + unit
}

// Keys of the bootstrap (pkg/setup), of Vault's unseal key and of the
// state setter's election.
const (
	// VaultUnsealKey holds Vault's unseal key (hex). Only etcd's root user
	// can read it once authentication is on.
	VaultUnsealKey = "vault-unseal-key"
	// SetupVaultRootToken holds Vault's initial root token while a setup
	// runs; the setup leader revokes and deletes it when setup finishes.
	SetupVaultRootToken = "setup/vault-root-token"
	// SetupFinished + LRN holds the last setup stage the server finished
	// (decimal): the barrier of setup once etcd runs.
	SetupFinished = "finish/"
	// LeaderStateSetter is the election prefix of sabakan-state-setter.
	LeaderStateSetter = "leader/state-setter"
)

// RepairPrefix + serial holds the RepairRecord of the last power cycle
// pkg/repair made of that machine (or tried to): what keeps it from
// cycling a machine twice for one failure, and the history its rate limit
// counts. Written only by the repair loop's leader, fenced by its key.
const RepairPrefix = "repair/"

// RepairKey is the repair record key of a machine.
func RepairKey(serial string) string { return RepairPrefix + serial }

// FinishKey records the last setup stage boot server lrn finished.
func FinishKey(lrn int) string { return SetupFinished + strconv.Itoa(lrn) }
