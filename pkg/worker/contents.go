package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/openneco/neco/pkg/fileutil"
)

// Contents is what the sabakan-contents step uploads, found in the
// package's share directory (/usr/share/neco):
//
//	images/<os>/<id>.tar      OS images (kernel and initrd in a tar)
//	assets/<name>             assets served to machines (files, or links to files)
//	ignitions/roles/<role>/   Ignition template trees (site.yml, including
//	                          ../../common/...), uploaded as <role>/<version>
//	dhcp.json                 sabakan's DHCP configuration
type Contents struct {
	Version   string
	Images    []ImageFile
	Assets    []File
	Ignitions []IgnitionDir
	// DHCP is the path of dhcp.json, "" when the package has none.
	DHCP string
	// Meta is the Ignition templates' metadata besides "version"
	// (IgnitionMeta).
	Meta map[string]any
}

// ImageFile is one OS image.
type ImageFile struct{ OS, ID, Path string }

// File is one asset.
type File struct{ Name, Path string }

// IgnitionDir is the template tree of one role: Root is the ignitions
// directory, the role's entry is Root/roles/<Role>/site.yml; ID is the
// version.
type IgnitionDir struct{ Role, ID, Root string }

// ScanContents lists the contents under dir for version. A missing
// sub-directory is simply empty.
func ScanContents(dir, version string) (Contents, error) {
	c := Contents{Version: version}
	osDirs, err := readDir(filepath.Join(dir, "images"))
	if err != nil {
		return c, err
	}
	for _, o := range osDirs {
		if !o.IsDir() {
			continue
		}
		files, err := readDir(filepath.Join(dir, "images", o.Name()))
		if err != nil {
			return c, err
		}
		for _, f := range files {
			if id, ok := strings.CutSuffix(f.Name(), ".tar"); ok && f.Type().IsRegular() {
				c.Images = append(c.Images, ImageFile{OS: o.Name(), ID: id, Path: filepath.Join(dir, "images", o.Name(), f.Name())})
			}
		}
	}
	assets, err := readDir(filepath.Join(dir, "assets"))
	if err != nil {
		return c, err
	}
	for _, a := range assets {
		// An asset may be a link to a file shipped elsewhere (the
		// Kubernetes executable in /usr/lib/neco).
		if fi, err := os.Stat(filepath.Join(dir, "assets", a.Name())); err == nil && fi.Mode().IsRegular() {
			c.Assets = append(c.Assets, File{Name: a.Name(), Path: filepath.Join(dir, "assets", a.Name())})
		}
	}
	roles, err := readDir(filepath.Join(dir, "ignitions", "roles"))
	if err != nil {
		return c, err
	}
	for _, r := range roles {
		if r.IsDir() {
			c.Ignitions = append(c.Ignitions, IgnitionDir{Role: r.Name(), ID: version, Root: filepath.Join(dir, "ignitions")})
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "dhcp.json")); err == nil {
		c.DHCP = filepath.Join(dir, "dhcp.json")
	}
	return c, nil
}

func readDir(dir string) ([]os.DirEntry, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return entries, err
}

// ContentsUploader puts contents into sabakan. Uploads must be idempotent:
// putting what is already there is no error.
type ContentsUploader interface {
	Upload(ctx context.Context, c Contents) error
}

// SabakanContentsStep uploads the package's contents once per version
// for the whole cluster (recorded at contents/sabakan), the Ignition
// templates with the metadata meta returns (nil: none).
func SabakanContentsStep(shareDir string, up ContentsUploader, meta func(context.Context, *StepEnv) (map[string]any, error)) Step {
	return OnceStep("sabakan-contents", "sabakan", func(ctx context.Context, e *StepEnv) error {
		c, err := ScanContents(shareDir, e.Request.Version)
		if err != nil {
			return fmt.Errorf("scan %s: %w", shareDir, err)
		}
		if meta != nil {
			if c.Meta, err = meta(ctx, e); err != nil {
				return fmt.Errorf("metadata of the Ignition templates: %w", err)
			}
		}
		return up.Upload(ctx, c)
	})
}

// DirUploader is a ContentsUploader into a local directory, laid out as
// sabakan's REST paths (images/<os>/<id>, assets/<name>,
// ignitions/<role>/<id>/..., config/dhcp.json), with a manifest.json of
// SHA-256 sums. It serves tests and hosts without sabakan.
type DirUploader struct{ Dir string }

// Upload implements ContentsUploader.
func (d DirUploader) Upload(ctx context.Context, c Contents) error {
	manifest := map[string]string{}
	put := func(src, dst string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		sum, err := copyFile(src, filepath.Join(d.Dir, dst))
		if err != nil {
			return fmt.Errorf("upload %s: %w", dst, err)
		}
		manifest[dst] = sum
		return nil
	}
	for _, img := range c.Images {
		if err := put(img.Path, filepath.Join("images", img.OS, img.ID)); err != nil {
			return err
		}
	}
	for _, a := range c.Assets {
		if err := put(a.Path, filepath.Join("assets", a.Name)); err != nil {
			return err
		}
	}
	for _, ign := range c.Ignitions {
		// The role's tree and what it may include, as one template source.
		err := filepath.WalkDir(ign.Root, func(p string, de os.DirEntry, err error) error {
			if err != nil || !de.Type().IsRegular() {
				return err
			}
			rel, _ := filepath.Rel(ign.Root, p)
			if strings.HasPrefix(rel, "roles"+string(filepath.Separator)) && !strings.HasPrefix(rel, filepath.Join("roles", ign.Role)+string(filepath.Separator)) {
				return nil
			}
			return put(p, filepath.Join("ignitions", ign.Role, ign.ID, rel))
		})
		if err != nil {
			return err
		}
	}
	if c.DHCP != "" {
		if err := put(c.DHCP, filepath.Join("config", "dhcp.json")); err != nil {
			return err
		}
	}
	data, _ := json.MarshalIndent(map[string]any{"version": c.Version, "files": manifest}, "", "  ")
	_, err := fileutil.WriteIfChanged(filepath.Join(d.Dir, "manifest.json"), data, 0o644)
	return err
}

func copyFile(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	data, err := io.ReadAll(in)
	if err != nil {
		return "", err
	}
	if _, err := fileutil.WriteIfChanged(dst, data, 0o644); err != nil {
		return "", err
	}
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:]), nil
}
