package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/cke/sabakan"
	ckestorage "github.com/openneco/neco/pkg/cke/storage"
)

// CKETemplateFile is the release's cluster.yml template in the share
// directory.
const CKETemplateFile = "cke-template.yml"

// CKETemplateStep stores the release's cluster.yml template (file) for the
// Kubernetes engine's sabakan integration, once per version, when the
// integration has a template: a data center where `neco init-data
// --cke-template` (or ckecli sabakan set-template) never ran is left
// alone. The engine then regenerates cluster.yml, and rolls the nodes
// that the change touches.
func CKETemplateStep(file string, st *ckestorage.Storage) Step {
	return OnceStep("cke-template", "cke-template", func(ctx context.Context, _ *StepEnv) error {
		return updateCKETemplate(ctx, file, st)
	})
}

func updateCKETemplate(ctx context.Context, file string, st *ckestorage.Storage) error {
	if st == nil {
		return errors.New("no connection to the Kubernetes engine's keys")
	}
	cur, err := st.GetSabakanSettings(ctx)
	if err != nil {
		return err
	}
	if cur.Template == nil {
		slog.Info("the Kubernetes engine has no cluster.yml template; not setting one", "step", "cke-template")
		return nil
	}
	t, err := ReadCKETemplate(file)
	if err != nil {
		return err
	}
	return st.PutSabakanTemplate(ctx, t)
}

// ReadCKETemplate reads and validates a cluster.yml template.
func ReadCKETemplate(file string) (*cke.Cluster, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("the cluster.yml template: %w", err)
	}
	t, err := sabakan.ParseTemplate(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return t, nil
}
