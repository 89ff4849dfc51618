package bootserver

import "path/filepath"

// Paths are the files and directories a boot server uses. Production uses
// NewPaths("/"); tests and the virtual data center give each simulated boot
// server a root directory of its own.
type Paths struct {
	Root string

	NecoDir    string // /etc/neco: configuration, certificates, credentials
	Config     string // /etc/neco/config.yml: how neco and the CD daemons reach etcd
	Rack       string // /etc/neco/rack: this server's LRN
	ClusterDef string // /etc/neco/cluster.yml: the cluster description
	AppRole    string // /etc/neco/vault-approle.json: this server's Vault AppRole credentials (0600)

	// Certificates and keys, all under NecoDir.
	ServerCA, ServerCert, ServerKey      string // CA of ca/server; this server's TLS server certificate
	PeerCA, PeerCert, PeerKey            string // CA of ca/boot-etcd-peer; etcd peer certificate
	ClientCA, ClientCert, ClientKey      string // CA of ca/boot-etcd-client; CN=root client certificate
	VaultEtcdCert, VaultEtcdKey          string // CN=vault client certificate Vault uses for its storage
	BackupCert, BackupKey                string // CN=backup read-only client certificate
	RegistryCert, RegistryKey            string // neco-registry's TLS server certificate (ca/server)
	EtcdDataDir, VaultConfig, StateDir   string
	StateFile, BootstrapDir, ServicesDir string
	ServiceCertDir                       string
	// HealthAgentDefaults is /etc/default/node-health-agent: the options
	// of node-health-agent.service (the serf member of this server).
	HealthAgentDefaults string
}

// NewPaths lays the files out under root.
func NewPaths(root string) Paths {
	j := func(p ...string) string { return filepath.Join(append([]string{root}, p...)...) }
	neco := j("etc", "neco")
	n := func(name string) string { return filepath.Join(neco, name) }
	return Paths{
		Root:       root,
		NecoDir:    neco,
		Config:     n("config.yml"),
		Rack:       n("rack"),
		ClusterDef: n("cluster.yml"),
		AppRole:    n("vault-approle.json"),

		ServerCA: n("ca-server.crt"), ServerCert: n("server.crt"), ServerKey: n("server.key"),
		PeerCA: n("ca-etcd-peer.crt"), PeerCert: n("etcd-peer.crt"), PeerKey: n("etcd-peer.key"),
		ClientCA: n("ca-etcd-client.crt"), ClientCert: n("etcd-root.crt"), ClientKey: n("etcd-root.key"),
		VaultEtcdCert: n("etcd-vault.crt"), VaultEtcdKey: n("etcd-vault.key"),
		BackupCert: n("etcd-backup.crt"), BackupKey: n("etcd-backup.key"),
		RegistryCert: n("registry.crt"), RegistryKey: n("registry.key"),

		EtcdDataDir:    j("var", "lib", "etcd"),
		VaultConfig:    j("etc", "vault", "config.json"),
		StateDir:       j("var", "lib", "neco"),
		StateFile:      j("var", "lib", "neco", "setup.json"),
		BootstrapDir:   j("var", "lib", "neco", "bootstrap"),
		ServicesDir:    j("var", "lib", "neco", "services"),
		ServiceCertDir: j("etc", "neco", "services"),

		HealthAgentDefaults: j("etc", "default", "node-health-agent"),
	}
}

// ServiceCert and ServiceKey are where init-local puts a service's etcd
// client certificate (CN = the service name).
func (p Paths) ServiceCert(name string) string {
	return filepath.Join(p.ServiceCertDir, name, "etcd.crt")
}

// ServiceKey is the private key of ServiceCert.
func (p Paths) ServiceKey(name string) string {
	return filepath.Join(p.ServiceCertDir, name, "etcd.key")
}

// ServiceCA is the CA bundle a service uses to verify the etcd servers.
func (p Paths) ServiceCA(name string) string {
	return filepath.Join(p.ServiceCertDir, name, "etcd-ca.crt")
}

// ServiceConfig is the etcd connection file written for a service.
func (p Paths) ServiceConfig(name string) string {
	return filepath.Join(p.ServiceCertDir, name, "etcd.yml")
}
