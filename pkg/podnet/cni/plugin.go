package cni

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

// NetConf is the plugin's entry in a CNI configuration list.
type NetConf struct {
	types.NetConf
	// Socket is the daemon's socket (DefaultSocket when empty).
	Socket string `json:"socket,omitempty"`
}

// parseConf reads the plugin's configuration from stdin's bytes.
func parseConf(data []byte) (*NetConf, error) {
	var c NetConf
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "podnet: malformed network configuration", err.Error())
	}
	if c.Socket == "" {
		c.Socket = DefaultSocket
	}
	return &c, nil
}

// podArgs reads K8S_POD_NAMESPACE and K8S_POD_NAME from CNI_ARGS
// ("K=V;K=V"); other keys are ignored, as the spec allows.
func podArgs(args string) (ns, name string) {
	for _, kv := range strings.Split(args, ";") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "K8S_POD_NAMESPACE":
			ns = v
		case "K8S_POD_NAME":
			name = v
		}
	}
	return ns, name
}

func request(cmd string, a *skel.CmdArgs) Request {
	ns, name := podArgs(a.Args)
	return Request{Command: cmd, ContainerID: a.ContainerID, Netns: a.Netns, IfName: a.IfName, PodNamespace: ns, PodName: name}
}

func forward(cmd string) func(*skel.CmdArgs) error {
	return func(a *skel.CmdArgs) error {
		conf, err := parseConf(a.StdinData)
		if err != nil {
			return err
		}
		raw, err := Call(context.Background(), conf.Socket, request(cmd, a))
		if err != nil || cmd != CmdAdd {
			return err
		}
		res, err := types100.NewResult(raw)
		if err != nil {
			return types.NewError(types.ErrInternal, "podnet daemon: malformed result", err.Error())
		}
		return types.PrintResult(res, conf.CNIVersion)
	}
}

// Main is the plugin's main: it reads the CNI environment and stdin,
// forwards the command and exits as the spec says (0, or 1 with a JSON
// error on stdout).
func Main(ver string) {
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add: forward(CmdAdd), Del: forward(CmdDel), Check: forward(CmdCheck), Status: forward(CmdStatus),
	}, version.All, fmt.Sprintf("podnet %s: the data center's routed pod network", ver))
}
