package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"

	"github.com/openneco/neco/pkg/cke/units"
)

// DefaultKubeDir is where the neco package installs Kubernetes
// (kube-vX.Y.Z).
const DefaultKubeDir = "/usr/lib/neco"

var kubeName = regexp.MustCompile(`^kube-v\d+\.\d+\.\d+$`)

// FindKube returns the newest kube-vX.Y.Z in dir.
func FindKube(dir string) (string, error) {
	matches, _ := filepath.Glob(filepath.Join(dir, "kube-v*"))
	matches = slices.DeleteFunc(matches, func(p string) bool { return !kubeName.MatchString(filepath.Base(p)) })
	if len(matches) == 0 {
		return "", fmt.Errorf("no kube-vX.Y.Z in %s: give -kube-binary", dir)
	}
	slices.SortFunc(matches, func(a, b string) int { return compareVersions(filepath.Base(a), filepath.Base(b)) })
	return matches[len(matches)-1], nil
}

func compareVersions(a, b string) int {
	var x, y [3]int
	fmt.Sscanf(a, "kube-v%d.%d.%d", &x[0], &x[1], &x[2])
	fmt.Sscanf(b, "kube-v%d.%d.%d", &y[0], &y[1], &y[2])
	return slices.Compare(x[:], y[:])
}

// LocalBinary describes the executable at path, named name on the nodes.
func LocalBinary(name, path string) (units.Binary, error) {
	f, err := os.Open(path)
	if err != nil {
		return units.Binary{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return units.Binary{}, fmt.Errorf("read %s: %w", path, err)
	}
	return units.Binary{Name: name, SHA256: hex.EncodeToString(h.Sum(nil)), Source: path}, nil
}

// FindPodnet describes the podnet executable at path or, when path is
// empty, beside the running executable; a missing default is no error
// (the engine then refuses clusters with a pod network).
func FindPodnet(path string) (units.Binary, error) {
	if path == "" {
		self, err := os.Executable()
		if err != nil {
			return units.Binary{}, nil
		}
		path = filepath.Join(filepath.Dir(self), "podnet")
		if _, err := os.Stat(path); err != nil {
			return units.Binary{}, nil
		}
	}
	return LocalBinary("podnet", path)
}
