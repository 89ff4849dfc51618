package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"

	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/sabakan/client"
	"github.com/openneco/neco/pkg/sabakan/ignition"
)

// SabakanUploader is the ContentsUploader of a boot server: it puts the
// contents into sabakan through its REST API. An image or Ignition
// template that already exists (409) counts as uploaded, so a re-run after
// an abort succeeds; assets and the DHCP configuration are replaced.
type SabakanUploader struct {
	Client *client.Client
}

// Upload implements ContentsUploader.
func (u SabakanUploader) Upload(ctx context.Context, c Contents) error {
	for _, img := range c.Images {
		err := withFile(img.Path, func(f *os.File, size int64) error {
			return u.Client.PutImage(ctx, img.OS, img.ID, f, size)
		})
		if err != nil && !errors.Is(err, sabakan.ErrConflict) {
			return fmt.Errorf("upload image %s/%s: %w", img.OS, img.ID, err)
		}
	}
	for _, a := range c.Assets {
		sum, err := fileSHA256(a.Path)
		if err != nil {
			return err
		}
		err = withFile(a.Path, func(f *os.File, size int64) error {
			_, _, err := u.Client.PutAsset(ctx, a.Name, f, size, client.AssetUpload{SHA256: sum})
			return err
		})
		if err != nil {
			return fmt.Errorf("upload asset %s: %w", a.Name, err)
		}
	}
	for _, ign := range c.Ignitions {
		site := filepath.Join(ign.Root, "roles", ign.Role, "site.yml")
		meta := map[string]any{"version": c.Version}
		maps.Copy(meta, c.Meta)
		built, err := ignition.Build(site, meta)
		if err != nil {
			return fmt.Errorf("build Ignition template of %s: %w", ign.Role, err)
		}
		t := &client.IgnitionTemplate{Version: built.Version, Template: built.Template, Meta: built.Meta}
		if err := u.Client.PutIgnition(ctx, ign.Role, ign.ID, t); err != nil && !errors.Is(err, sabakan.ErrConflict) {
			return fmt.Errorf("upload Ignition template %s/%s: %w", ign.Role, ign.ID, err)
		}
	}
	if c.DHCP != "" {
		data, err := os.ReadFile(c.DHCP)
		if err != nil {
			return err
		}
		var cfg sabakan.DHCPConfig
		if err := json.Unmarshal(data, &cfg); err != nil {
			return fmt.Errorf("%s: %w", c.DHCP, err)
		}
		if err := u.Client.SetDHCP(ctx, &cfg); err != nil {
			return fmt.Errorf("set DHCP configuration: %w", err)
		}
	}
	return nil
}

func withFile(path string, f func(*os.File, int64) error) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return err
	}
	return f(file, st.Size())
}

func fileSHA256(path string) (string, error) {
	file, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer file.Close()
	h := sha256.New()
	if _, err := io.Copy(h, file); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
