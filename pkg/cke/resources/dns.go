package resources

import (
	"fmt"
	"strings"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/cke/units"
	"github.com/openneco/neco/pkg/images"
)

// clusterDNS returns the objects of the cluster DNS by key: CoreDNS from
// the boot servers' registry behind the Service kube-system/cluster-dns at
// the service subnet's 10th address (the kubelets' clusterDNS).
func clusterDNS(c *cke.Cluster) map[string][]byte {
	upstream := "/etc/resolv.conf"
	if len(c.DNSServers) > 0 {
		upstream = strings.Join(c.DNSServers, " ")
	}
	corefile := fmt.Sprintf(`.:53 {
    errors
    health {
        lameduck 5s
    }
    ready
    kubernetes %s in-addr.arpa ip6.arpa {
        pods verified
        fallthrough in-addr.arpa ip6.arpa
    }
    prometheus :9153
    forward . %s
    cache 30
    loop
    reload
    loadbalance
}`, units.ClusterDomain, upstream)
	labels := "{cke.openneco.io/managed: \"true\", k8s-app: cluster-dns}"
	return map[string][]byte{
		"ServiceAccount/kube-system/cluster-dns": []byte(`apiVersion: v1
kind: ServiceAccount
metadata: {name: cluster-dns, namespace: kube-system, labels: ` + labels + `}
`),
		"ClusterRole/system:cke:cluster-dns": []byte(`apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:cke:cluster-dns", labels: ` + labels + `}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
`),
		"ClusterRoleBinding/system:cke:cluster-dns": []byte(`apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:cke:cluster-dns", labels: ` + labels + `}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:cke:cluster-dns"}
subjects:
- {kind: ServiceAccount, name: cluster-dns, namespace: kube-system}
`),
		"ConfigMap/kube-system/cluster-dns": []byte(`apiVersion: v1
kind: ConfigMap
metadata: {name: cluster-dns, namespace: kube-system, labels: ` + labels + `}
data:
  Corefile: |
` + indent(corefile, "    ") + `
`),
		"Deployment/kube-system/cluster-dns": []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: cluster-dns, namespace: kube-system, labels: ` + labels + `}
spec:
  replicas: 2
  selector: {matchLabels: {k8s-app: cluster-dns}}
  strategy: {rollingUpdate: {maxUnavailable: 1}}
  template:
    metadata: {labels: {k8s-app: cluster-dns}}
    spec:
      serviceAccountName: cluster-dns
      # The node's resolvers, not the cluster DNS itself (a forwarding loop).
      dnsPolicy: Default
      priorityClassName: system-cluster-critical
      tolerations:
      - {key: CriticalAddonsOnly, operator: Exists}
      - {key: node-role.kubernetes.io/control-plane, effect: NoSchedule}
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            podAffinityTerm:
              labelSelector: {matchLabels: {k8s-app: cluster-dns}}
              topologyKey: kubernetes.io/hostname
      containers:
      - name: coredns
        image: ` + images.CoreDNSName + `
        args: [-conf, /etc/coredns/Corefile]
        resources:
          requests: {cpu: 50m, memory: 64Mi}
          limits: {memory: 170Mi}
        ports:
        - {name: dns, containerPort: 53, protocol: UDP}
        - {name: dns-tcp, containerPort: 53, protocol: TCP}
        - {name: metrics, containerPort: 9153, protocol: TCP}
        securityContext:
          allowPrivilegeEscalation: false
          capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}
          readOnlyRootFilesystem: true
        livenessProbe:
          httpGet: {path: /health, port: 8080}
          initialDelaySeconds: 10
        readinessProbe:
          httpGet: {path: /ready, port: 8181}
        volumeMounts:
        - {name: config, mountPath: /etc/coredns, readOnly: true}
      volumes:
      - name: config
        configMap: {name: cluster-dns}
`),
		"Service/kube-system/cluster-dns": []byte(`apiVersion: v1
kind: Service
metadata: {name: cluster-dns, namespace: kube-system, labels: ` + labels + `}
spec:
  selector: {k8s-app: cluster-dns}
  clusterIP: ` + units.ServiceIP(c, 10) + `
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
`),
	}
}

func indent(s, prefix string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}
