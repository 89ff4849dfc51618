package ckevault

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The PKI mounts of the engine.
const (
	CAServer                = "cke/ca-server"                 // Kubernetes etcd servers
	CAEtcdPeer              = "cke/ca-etcd-peer"              // etcd peers
	CAEtcdClient            = "cke/ca-etcd-client"            // etcd clients
	CAKubernetes            = "cke/ca-kubernetes"             // kube-apiserver, its clients, kubelets
	CAKubernetesAggregation = "cke/ca-kubernetes-aggregation" // the front proxy of API aggregation
	CAKubernetesWebhook     = "cke/ca-kubernetes-webhook"     // admission webhook servers
)

// CAs are the engine's PKI mounts, in a fixed order.
var CAs = []string{CAServer, CAEtcdPeer, CAEtcdClient, CAKubernetes, CAKubernetesAggregation, CAKubernetesWebhook}

const (
	// SecretsMount is the KV (version 1) mount of the engine's secrets.
	SecretsMount = "cke/secrets"
	// PolicyName is the policy of the engine's token.
	PolicyName = "cke"
	// AppRoleName is the AppRole the engine logs in with.
	AppRoleName = "cke"

	// CATTL is the lifetime of the generated root CAs.
	CATTL = 10 * 365 * 24 * time.Hour
	// TokenTTL is the lifetime of the engine's token between renewals;
	// TokenMaxTTL is the lifetime after which it must log in again.
	TokenTTL    = time.Hour
	TokenMaxTTL = 24 * time.Hour

	// MachineCertMaxTTL bounds the lifetime of certificates of components;
	// AdminCertMaxTTL bounds that of administrators' certificates.
	MachineCertMaxTTL = 365 * 24 * time.Hour
	AdminCertMaxTTL   = 30 * 24 * time.Hour
)

// Paths in cke/secrets.
const (
	secretSSH            = SecretsMount + "/ssh"
	secretEncryption     = SecretsMount + "/encryption"
	secretServiceAccount = SecretsMount + "/service-account"
)

// Errors of this package; check them with errors.Is.
var (
	ErrUnknownCA      = errors.New("unknown CA")
	ErrInvalidRequest = errors.New("invalid certificate request")
)

// RoleSpec is a PKI role: the properties of the certificates issued with
// it. It is written to the CA's mount the first time a session issues with
// it. Name is unique per CA; the same name must always mean the same spec.
type RoleSpec struct {
	Name string
	// Server and Client set the extended key usages serverAuth and clientAuth.
	Server, Client bool
	// Organization is the subject's O; Vault's issue endpoint cannot set it,
	// so each organization needs its own role.
	Organization string
	// MaxTTL bounds IssueRequest.TTL.
	MaxTTL time.Duration
}

// The roles of the engine. Every CA uses the ones it needs:
//
//	role     CA                              certificates
//	server   cke/ca-server                   etcd servers (CN = node name, SANs = node addresses)
//	         cke/ca-kubernetes               kube-apiserver serving
//	         cke/ca-kubernetes-webhook       admission webhook servers
//	peer     cke/ca-etcd-peer                etcd peers (server and client)
//	client   cke/ca-etcd-client              etcd users: kube-apiserver, the engine, backups (CN = etcd user)
//	         cke/ca-kubernetes               system:kube-controller-manager, system:kube-scheduler,
//	                                         system:kube-proxy, the apiserver's kubelet client
//	         cke/ca-kubernetes-aggregation   the front proxy client
//	admin    cke/ca-kubernetes               administrators, O=system:masters
//	kubelet  cke/ca-kubernetes               system:node:<name>, O=system:nodes (server and client)
var (
	RoleServer  = RoleSpec{Name: "server", Server: true, MaxTTL: MachineCertMaxTTL}
	RolePeer    = RoleSpec{Name: "peer", Server: true, Client: true, MaxTTL: MachineCertMaxTTL}
	RoleClient  = RoleSpec{Name: "client", Client: true, MaxTTL: MachineCertMaxTTL}
	RoleAdmin   = RoleSpec{Name: "admin", Client: true, Organization: "system:masters", MaxTTL: AdminCertMaxTTL}
	RoleKubelet = RoleSpec{Name: "kubelet", Server: true, Client: true, Organization: "system:nodes", MaxTTL: MachineCertMaxTTL}
)

// Common names of the components' Kubernetes client certificates.
const (
	CNControllerManager      = "system:kube-controller-manager"
	CNScheduler              = "system:kube-scheduler"
	CNKubeProxy              = "system:kube-proxy"
	CNAPIServerKubeletClient = "kube-apiserver-kubelet-client"
	CNFrontProxyClient       = "front-proxy-client"
)

// KubeletCN is the common name of node's kubelet certificate, which the
// Node authorizer expects.
func KubeletCN(node string) string { return "system:node:" + node }

// Policy is the policy of the engine's token: issue from its CAs (and write
// the roles it issues with), read their certificates, keep its secrets, keep
// its token alive. It cannot touch a CA's key, sys/ or any other mount.
var Policy = func() string {
	var b strings.Builder
	b.WriteString("# The Kubernetes engine (CKE); written by ckevault.Init.\n")
	for _, ca := range CAs {
		fmt.Fprintf(&b, "path %q { capabilities = [\"create\", \"update\"] }\n", ca+"/issue/*")
		fmt.Fprintf(&b, "path %q { capabilities = [\"create\", \"update\"] }\n", ca+"/roles/*")
		fmt.Fprintf(&b, "path %q { capabilities = [\"read\"] }\n", ca+"/cert/ca")
	}
	fmt.Fprintf(&b, "path %q { capabilities = [\"create\", \"read\", \"update\", \"list\"] }\n", SecretsMount+"/*")
	b.WriteString(`path "auth/token/renew-self" { capabilities = ["update"] }` + "\n")
	b.WriteString(`path "auth/token/lookup-self" { capabilities = ["read"] }` + "\n")
	return b.String()
}()

func checkCA(ca string) error {
	if !slices.Contains(CAs, ca) {
		return fmt.Errorf("%w %q (the CAs are %s)", ErrUnknownCA, ca, strings.Join(CAs, ", "))
	}
	return nil
}
