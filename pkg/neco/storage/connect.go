package storage

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/openneco/neco/pkg/config"
	"github.com/openneco/neco/pkg/etcdutil"
)

// Default paths on a boot server.
const (
	// DefaultConfigFile holds how neco and the CD daemons reach etcd: the
	// key "etcd" in cybozu-go/etcdutil's format (written by neco setup).
	DefaultConfigFile = "/etc/neco/config.yml"
	// DefaultRackFile holds this boot server's LRN (written by neco setup).
	DefaultRackFile = "/etc/neco/rack"
	// DefaultPrefix is the etcd prefix of neco's keys.
	DefaultPrefix = "/neco/"
)

// FileConfig is the layout of DefaultConfigFile.
type FileConfig struct {
	Etcd *etcdutil.Config `json:"etcd"`
}

// AddFlags registers -config and the -etcd-* flags on fs and returns a
// function that loads the file (flags given explicitly win) once fs is
// parsed.
func AddFlags(fs *flag.FlagSet) func() (*etcdutil.Config, error) {
	cfg := &FileConfig{Etcd: etcdutil.NewConfig(DefaultPrefix)}
	path := fs.String("config", DefaultConfigFile, "configuration file with the etcd connection (key etcd); empty: flags only")
	cfg.Etcd.AddFlags(fs)
	return func() (*etcdutil.Config, error) {
		if err := config.Load(fs, *path, cfg); err != nil {
			return nil, err
		}
		return cfg.Etcd, nil
	}
}

// ReadLRN reads the LRN from a rack file.
func ReadLRN(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read this boot server's LRN: %w (neco setup writes it)", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: %q is not a logical rack number", path, strings.TrimSpace(string(data)))
	}
	return n, nil
}
