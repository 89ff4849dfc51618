// Package bootserver is what a boot server is once set up, shared by the
// bootstrap (pkg/setup), the CD worker (pkg/worker) and the neco command:
//
//   - where the boot servers are: the cluster description (Cluster, Server,
//     LoadCluster; docs/bootstrap.md) and a server's files (Paths);
//   - how a boot server reaches etcd as root (EtcdConfig) and its Vault
//     (NewVaultClient, Login with its AppRole credentials, Unseal);
//   - its certificates (CertSpecs, Issue, IssueFromVault, CheckClientCert);
//   - the etcd user and client certificate of a service (InitService,
//     InitLocal, EnsureService: `neco init`, `neco init-local`, and the
//     worker preparing sabakan).
//
// The one-time procedures that make and change the set of boot servers
// (setup, join, leave) are pkg/setup's.
package bootserver
