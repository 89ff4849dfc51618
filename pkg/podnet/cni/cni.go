// Package cni is podnet's CNI plugin and the protocol it speaks with the
// node daemon. The plugin does nothing itself: it forwards each command
// (CNI spec 1.1.0: ADD, DEL, CHECK, STATUS; VERSION is answered locally)
// to the daemon over a unix socket and prints the daemon's result, so that
// every address and route is made by the one process that owns the node's
// state.
package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

// DefaultSocket is where the daemon listens.
const DefaultSocket = "/run/podnet.sock"

// PluginType is the plugin's name: its executable in the CNI bin directory
// and "type" in the configuration.
const PluginType = "podnet"

// Commands.
const (
	CmdAdd    = "ADD"
	CmdDel    = "DEL"
	CmdCheck  = "CHECK"
	CmdStatus = "STATUS"
)

// Request is one CNI command as the plugin received it.
type Request struct {
	Command     string `json:"command"`
	ContainerID string `json:"containerID"`
	Netns       string `json:"netns,omitempty"`
	IfName      string `json:"ifName"`
	// PodNamespace and PodName come from CNI_ARGS (K8S_POD_NAMESPACE,
	// K8S_POD_NAME); the namespace picks the address pool.
	PodNamespace string `json:"podNamespace,omitempty"`
	PodName      string `json:"podName,omitempty"`
}

// Key identifies a pod interface: what the daemon allocates for.
func (r Request) Key() string { return r.ContainerID + "/" + r.IfName }

// Validate checks what every command needs.
func (r Request) Validate() error {
	switch r.Command {
	case CmdStatus:
		return nil
	case CmdAdd, CmdDel, CmdCheck:
	default:
		return fmt.Errorf("unknown command %q", r.Command)
	}
	switch {
	case r.ContainerID == "":
		return fmt.Errorf("%s: no container id", r.Command)
	case r.IfName == "" || len(r.IfName) > 15:
		return fmt.Errorf("%s: interface name %q: want 1 to 15 characters", r.Command, r.IfName)
	case r.Command != CmdDel && r.Netns == "":
		return fmt.Errorf("%s: no network namespace", r.Command)
	}
	return nil
}

// DecodeRequest reads one request (JSON, at most 64 KiB) and validates it.
func DecodeRequest(r io.Reader) (Request, error) {
	var req Request
	d := json.NewDecoder(io.LimitReader(r, 64<<10))
	d.DisallowUnknownFields()
	if err := d.Decode(&req); err != nil {
		return Request{}, fmt.Errorf("malformed request: %w", err)
	}
	if err := req.Validate(); err != nil {
		return Request{}, err
	}
	return req, nil
}

// Reply is the daemon's answer: a CNI result (ADD) or a CNI error.
type Reply struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  *types.Error    `json:"error,omitempty"`
}

// callTimeout bounds one command; kubelet's own runtime request timeout
// is 2 minutes and an ADD may claim a block from the API.
const callTimeout = 90 * time.Second

// Call sends req to the daemon at socket and returns the result of an
// ADD. A refusal is a *types.Error with the daemon's code and message.
func Call(ctx context.Context, socket string, req Request) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://podnet/v1/cni", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(hreq)
	if err != nil {
		return nil, types.NewError(types.ErrTryAgainLater, "podnet daemon unreachable", err.Error())
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, types.NewError(types.ErrTryAgainLater, "podnet daemon: reading the answer", err.Error())
	}
	var rep Reply
	if err := json.Unmarshal(data, &rep); err != nil {
		return nil, types.NewError(types.ErrInternal, fmt.Sprintf("podnet daemon: %s", resp.Status), string(bytes.TrimSpace(data)))
	}
	if rep.Error != nil {
		return nil, rep.Error
	}
	if resp.StatusCode != http.StatusOK {
		return nil, types.NewError(types.ErrInternal, "podnet daemon: "+resp.Status, "")
	}
	return rep.Result, nil
}
