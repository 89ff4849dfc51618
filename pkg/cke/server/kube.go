package server

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/openneco/neco/pkg/cke/kubeapi"
	"github.com/openneco/neco/pkg/cke/units"
)

// FieldManager is the engine's name in server-side apply.
const FieldManager = "cke"

// appliedConfigMap records the hashes the engine's resources were last
// applied with (kube-system/cke-resources, key "applied").
const (
	appliedNamespace = "kube-system"
	appliedName      = "cke-resources"
)

// kube is the engine's Kubernetes client (op.Kube).
type kube struct {
	*kubeapi.Client
	cfg kubeapi.Config
}

func newKube(cfg kubeapi.Config) (*kube, error) {
	c, err := kubeapi.New(cfg)
	if err != nil {
		return nil, err
	}
	return &kube{Client: c, cfg: cfg}, nil
}

func (k *kube) Apply(ctx context.Context, manifest []byte) error {
	_, err := k.Client.Apply(ctx, manifest, FieldManager, true)
	return err
}

// ReadyzAt asks only the API server on addr.
func (k *kube) ReadyzAt(ctx context.Context, addr string) error {
	cfg := k.cfg
	cfg.Servers = []string{fmt.Sprintf("https://%s:%d", addr, units.APIServerPort)}
	c, err := kubeapi.New(cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Readyz(ctx)
}

// Applied returns what SetApplied recorded (nothing on a new cluster).
func (k *kube) Applied(ctx context.Context) (map[string]string, error) {
	obj, err := k.GetObject(ctx, "v1", "ConfigMap", appliedNamespace, appliedName)
	if kubeapi.IsNotFound(err) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	data, _ := obj["data"].(map[string]any)
	if s, ok := data["applied"].(string); ok {
		if err := json.Unmarshal([]byte(s), &out); err != nil {
			return nil, fmt.Errorf("%s/%s: %w", appliedNamespace, appliedName, err)
		}
	}
	return out, nil
}

func (k *kube) SetApplied(ctx context.Context, applied map[string]string) error {
	data, err := json.Marshal(applied)
	if err != nil {
		return err
	}
	cm, err := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": appliedName, "namespace": appliedNamespace},
		"data":     map[string]string{"applied": string(data)},
	})
	if err != nil {
		return err
	}
	return k.Apply(ctx, cm)
}
