package kubeapi

import (
	"sigs.k8s.io/yaml"
)

// kubeconfigCluster is the name of the cluster in the kubeconfig files
// Kubeconfig writes.
const kubeconfigCluster = "kubernetes"

// Kubeconfig is a kubeconfig file (YAML) for user (a name for the
// credentials, e.g. the certificate's common name) to reach the API server
// at server (https://host:port) with a client certificate, its context the
// current one. The certificates and key are PEM; they are embedded.
func Kubeconfig(server string, caCert, clientCert, clientKey []byte, user string) []byte {
	type cluster struct {
		Server string `json:"server"`
		CA     []byte `json:"certificate-authority-data,omitempty"`
	}
	type authInfo struct {
		Cert []byte `json:"client-certificate-data,omitempty"`
		Key  []byte `json:"client-key-data,omitempty"`
	}
	type kubeContext struct {
		Cluster string `json:"cluster"`
		User    string `json:"user"`
	}
	contextName := user + "@" + kubeconfigCluster
	cfg := map[string]any{
		"apiVersion": "v1",
		"kind":       "Config",
		"clusters": []map[string]any{{
			"name":    kubeconfigCluster,
			"cluster": cluster{Server: server, CA: caCert},
		}},
		"users": []map[string]any{{
			"name": user,
			"user": authInfo{Cert: clientCert, Key: clientKey},
		}},
		"contexts": []map[string]any{{
			"name":    contextName,
			"context": kubeContext{Cluster: kubeconfigCluster, User: user},
		}},
		"current-context": contextName,
		"preferences":     map[string]any{},
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		// Strings and bytes always marshal.
		panic(err)
	}
	return out
}
