package kubeapi

import (
	"fmt"
	"os"
	"path/filepath"

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

// LoadKubeconfig reads the current context of the kubeconfig file at path
// into a Config: the server, its CA and a client certificate, given as
// files (relative to the kubeconfig's directory) or embedded data. Other
// credentials (tokens, exec plugins) are refused.
func LoadKubeconfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	var kc struct {
		Clusters []struct {
			Name    string `json:"name"`
			Cluster struct {
				Server   string `json:"server"`
				CA       string `json:"certificate-authority"`
				CAData   []byte `json:"certificate-authority-data"`
				Insecure bool   `json:"insecure-skip-tls-verify"`
			} `json:"cluster"`
		} `json:"clusters"`
		Users []struct {
			Name string `json:"name"`
			User struct {
				Cert     string `json:"client-certificate"`
				CertData []byte `json:"client-certificate-data"`
				Key      string `json:"client-key"`
				KeyData  []byte `json:"client-key-data"`
				Token    string `json:"token"`
			} `json:"user"`
		} `json:"users"`
		Contexts []struct {
			Name    string `json:"name"`
			Context struct {
				Cluster string `json:"cluster"`
				User    string `json:"user"`
			} `json:"context"`
		} `json:"contexts"`
		Current string `json:"current-context"`
	}
	if err := yaml.Unmarshal(data, &kc); err != nil {
		return Config{}, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	bad := func(format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("kubeconfig %s: "+format, append([]any{path}, args...)...)
	}
	var clusterName, userName string
	for _, c := range kc.Contexts {
		if c.Name == kc.Current {
			clusterName, userName = c.Context.Cluster, c.Context.User
		}
	}
	if clusterName == "" {
		return bad("no context %q", kc.Current)
	}
	dir := filepath.Dir(path)
	read := func(data []byte, file string) ([]byte, error) {
		if len(data) > 0 || file == "" {
			return data, nil
		}
		if !filepath.IsAbs(file) {
			file = filepath.Join(dir, file)
		}
		return os.ReadFile(file)
	}
	var cfg Config
	for _, c := range kc.Clusters {
		if c.Name != clusterName {
			continue
		}
		if c.Cluster.Insecure {
			return bad("insecure-skip-tls-verify is not supported")
		}
		cfg.Servers = []string{c.Cluster.Server}
		if cfg.CACert, err = read(c.Cluster.CAData, c.Cluster.CA); err != nil {
			return bad("%v", err)
		}
	}
	if len(cfg.Servers) == 0 || cfg.Servers[0] == "" {
		return bad("no server for cluster %q", clusterName)
	}
	for _, u := range kc.Users {
		if u.Name != userName {
			continue
		}
		if u.User.Token != "" {
			return bad("token credentials are not supported")
		}
		if cfg.ClientCert, err = read(u.User.CertData, u.User.Cert); err != nil {
			return bad("%v", err)
		}
		if cfg.ClientKey, err = read(u.User.KeyData, u.User.Key); err != nil {
			return bad("%v", err)
		}
	}
	return cfg, nil
}
