// Package storage owns the engine's keys in the boot servers' etcd (the
// /cke/ prefix; docs/etcd.md lists every key). ckecli writes the
// declaration (cluster.yml, constraints, resources, Vault settings); the
// elected engine writes its records and status, every write fenced by its
// leader key so that a deposed leader changes nothing.
package storage

import "fmt"

// DefaultPrefix is the engine's prefix in the boot servers' etcd.
const DefaultPrefix = "/cke/"

// Keys relative to the engine's prefix.
const (
	KeyCluster     = "cluster"
	KeyConstraints = "constraints"
	// KeyVault holds the engine's Vault settings (VaultConfig).
	KeyVault = "vault"
	// KeyStatus holds the leader's last decision (Status).
	KeyStatus = "status"
	// KeyManaged lists the node addresses the engine has run services on.
	KeyManaged = "managed-nodes"
	// KeyNextRecord holds the next record ID.
	KeyNextRecord = "records-next"
	// PrefixRecords + 20-digit ID holds an operation's Record.
	PrefixRecords = "records/"
	// PrefixResources + key holds a user resource (ckecli resource set).
	PrefixResources = "resources/"
	// PrefixHostKeys + node address holds its pinned SSH host key.
	PrefixHostKeys = "ssh-host-keys/"
	// PrefixCA + name holds a CA certificate (PEM) copied from Vault.
	PrefixCA = "ca/"
	// KeySSHPublicKey is the engine's SSH public key (an authorized_keys
	// line), copied from Vault by ckecli vault init for the nodes' set-up.
	KeySSHPublicKey = "ssh-public-key"
	// PrefixSabakan holds the sabakan integration's settings.
	PrefixSabakan = "sabakan/"
	// KeySabakanURL is sabakan's base URL for the sabakan integration.
	KeySabakanURL = "sabakan/url"
	// KeySabakanTemplate is the cluster.yml template the integration
	// generates cluster.yml from.
	KeySabakanTemplate = "sabakan/template"
	// KeySabakanDisabled exists while the integration is disabled.
	KeySabakanDisabled = "sabakan/disabled"
	// LeaderElection is the engine's election prefix.
	LeaderElection = "leader"
)

// MaxRecords is how many operation records are kept.
const MaxRecords = 1000

func recordKey(id int64) string { return fmt.Sprintf("%s%020d", PrefixRecords, id) }
