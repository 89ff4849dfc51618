// Package setup makes and changes the set of boot servers of a neco data
// center: `neco setup` (a temporary CA, etcd with mutual TLS, Vault in HA
// with etcd storage and its PKI, certificates re-issued from Vault, etcd
// authentication, the first update request, the daemons), `neco join` and
// `neco leave`. docs/bootstrap.md is the operator's guide.
//
// What a set-up boot server is (its description, files, certificates,
// Vault credentials, per-service etcd users) is pkg/bootserver's; its keys
// under /neco/ are read and written through pkg/neco/storage
// (docs/etcd.md); its daemons run through pkg/services.
//
// Files: run.go is the stage runner of Run (options, state file, resume);
// session.go the bootstrap session and its rendezvous (rendezvous.go);
// stages.go what each stage does; certs.go the temporary CAs; etcd.go and
// vault.go etcd's and Vault's units, configuration, membership and
// authentication; restart.go the restart of both with renewed
// certificates; localconfig.go the files written for neco and the daemons
// (config.yml, rack, cluster.yml, node-health-agent's options); daemons.go
// the daemons started at the end; join.go and leave.go the other two
// commands.
package setup
