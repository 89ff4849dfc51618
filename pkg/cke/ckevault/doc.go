// Package ckevault is everything the Kubernetes engine (CKE) and
// `ckecli vault init` need from Vault. It owns the engine's Vault layout:
//
//   - PKI mounts, each with a generated root CA (EC P-256, 10 years, common
//     name "cke <name> CA"), listed in [CAs]:
//     cke/ca-server (the Kubernetes etcd servers), cke/ca-etcd-peer (etcd
//     peers), cke/ca-etcd-client (etcd clients: kube-apiserver, the engine,
//     users), cke/ca-kubernetes (kube-apiserver, its clients and the
//     kubelets), cke/ca-kubernetes-aggregation (the front proxy client of
//     API aggregation) and cke/ca-kubernetes-webhook (admission webhook
//     servers).
//   - Roles on those mounts, created lazily by [Session.Issue] from a
//     [RoleSpec]: [RoleServer], [RoleClient], [RolePeer], [RoleAdmin] and
//     [RoleKubelet] (the role fixes the subject's organization, which Vault's
//     issue endpoint cannot set).
//   - KV version 1 at cke/secrets ([SecretsMount]), generated once by [Init]
//     and never replaced by it: cke/secrets/ssh (the SSH key pair the engine
//     reaches the nodes with), cke/secrets/encryption (kube-apiserver's
//     encryption-at-rest key) and cke/secrets/service-account (the key pair
//     that signs service account tokens). Kubernetes loses its encrypted data
//     and its tokens if the last two change.
//   - Policy cke ([PolicyName], text [Policy]) and AppRole cke ([AppRoleName]):
//     the engine logs in with the role's role_id and a secret_id ([Login]) and
//     keeps its token renewed ([Session.Run]).
//
// Neither the engine nor ckecli build Vault paths by hand: they use this
// package.
package ckevault
