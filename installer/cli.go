package installer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/firstboot"
	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/vdc/menu"
	"github.com/openneco/neco/pkg/vdc/rootfs"
)

// NewRootCommand is the neco-installer command.
func NewRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "neco-installer",
		Short: "build the boot server's disk image and give it a first-boot seed",
		Long: `neco-installer builds the boot server's operating system as a UEFI disk
image (build) and writes the identity seed of one server into an image or a
disk written from it (seed). See docs/installer.md.

Exit codes: 0 success, 1 failure, 2 usage error.`,
	}
	root.AddCommand(newBuildCommand(), newSeedCommand())
	return root
}

func newBuildCommand() *cobra.Command {
	var o Options
	var ipamFile, rootSize string
	var keyFiles []string
	var out cli.Output
	cmd := &cobra.Command{
		Use:   "build --deb NECO.deb --out DISK.img",
		Short: "build the disk image",
		Long: `Builds a raw GPT disk image: an EFI system partition with systemd-boot, the
kernel and the initramfs, and an ext4 root file system holding the data
center's Debian tree (cached under --cache-dir; the virtual data center's
machines boot the same tree) with the neco package installed. Its services
are enabled and wait for neco setup; the server's identity comes at first
boot (neco-installer seed, docs/installer.md). Runs as root; nothing is
mounted.

Every file time later than SOURCE_DATE_EPOCH is set to it, and the disk's
identifiers derive from the inputs: the same inputs give the same image.`,
		Args: cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Deb == "" || o.Out == "" {
				return cli.UsageError("--deb and --out are required")
			}
			if ipamFile != "" {
				data, err := os.ReadFile(ipamFile)
				if err != nil {
					return err
				}
				o.IPAM = &sabakan.IPAMConfig{}
				if err := json.Unmarshal(data, o.IPAM); err != nil {
					return fmt.Errorf("%s: %w", ipamFile, err)
				}
			}
			keys, err := readKeys(keyFiles)
			if err != nil {
				return err
			}
			o.SSHKeys = append(o.SSHKeys, keys...)
			if rootSize != "" {
				n, err := parseSize(rootSize)
				if err != nil {
					return cli.UsageError("--root-size: %v", err)
				}
				o.RootSize = n
			}
			epoch, err := sourceDateEpoch(o.Deb)
			if err != nil {
				return err
			}
			o.Epoch = epoch
			o.Tree = menu.TreeSpec()
			if out != cli.OutputJSON {
				o.Log = cmd.ErrOrStderr()
			}
			r, err := Build(cmd.Context(), o)
			if err != nil {
				return err
			}
			if out == cli.OutputJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), r)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d MiB (%d MiB allocated), Linux %s, sha256 %s, built in %s\n",
				r.Path, r.Size/mib, r.Allocated/mib, r.Kernel, r.SHA256, r.Elapsed.Round(time.Second))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Deb, "deb", "", "the neco package to install (make deb)")
	f.StringVar(&o.Out, "out", "", "the disk image to write")
	f.StringVar(&ipamFile, "ipam", "", "the site's IPAM configuration (JSON, as sabactl ipam set takes); sabakan's reference one when unset")
	f.StringVar(&o.User, "user", "neco", "the operator account (sudo, SSH keys only)")
	f.StringArrayVar(&keyFiles, "ssh-keys", nil, "an authorized_keys `file` for the operator (repeatable); more can come with the seed")
	f.StringArrayVar(&o.NTPServers, "ntp", nil, "an NTP server for chrony (repeatable); Debian's pool when none")
	f.StringVar(&rootSize, "root-size", "", "the root partition's size, e.g. 4G (default: what the tree needs and a quarter more; it grows over the disk at first boot)")
	f.StringVar(&o.CacheDir, "cache-dir", rootfs.DefaultCacheDir, "where the Debian trees are cached")
	cli.AddOutputFlag(cmd, &out, cli.OutputSimple, cli.OutputJSON)
	return cmd
}

// readKeys reads the key lines of authorized_keys files (no blank lines,
// no comments).
func readKeys(files []string) ([]string, error) {
	var keys []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, l := range strings.Split(string(data), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				keys = append(keys, l)
			}
		}
	}
	return keys, nil
}

// sourceDateEpoch is SOURCE_DATE_EPOCH, or else the package's time.
func sourceDateEpoch(deb string) (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return time.Time{}, cli.UsageError("SOURCE_DATE_EPOCH=%q is not a positive number of seconds", s)
		}
		return time.Unix(n, 0), nil
	}
	st, err := os.Stat(deb)
	if err != nil {
		return time.Time{}, err
	}
	return st.ModTime().Truncate(time.Second), nil
}

func parseSize(s string) (int64, error) {
	mult := map[string]int64{"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
	unit := int64(1)
	if s == "" {
		return 0, fmt.Errorf("empty size (e.g. 4G, 512M)")
	}
	if m, ok := mult[strings.ToUpper(s[len(s)-1:])]; ok {
		unit, s = m, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a size (e.g. 4G, 512M)", s)
	}
	return n * unit, nil
}

func newSeedCommand() *cobra.Command {
	var seed firstboot.Seed
	var rack, index uint
	var keyFiles []string
	cmd := &cobra.Command{
		Use:   "seed --rack N DISK",
		Short: "write one server's identity seed into an image or a disk written from it",
		Long: `Writes neco/seed.yml on the EFI system partition of DISK (an image file or
a block device written from one), which the server reads at its first boot:
its rack, and optionally its index in the rack, serial (SMBIOS by default),
host name and the operator's SSH keys. Nothing is mounted (mtools).`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("rack") {
				return cli.UsageError("--rack is required")
			}
			seed.Rack = &rack
			if cmd.Flags().Changed("index") {
				seed.Index = &index
			}
			keys, err := readKeys(keyFiles)
			if err != nil {
				return err
			}
			seed.SSHAuthorizedKeys = append(seed.SSHAuthorizedKeys, keys...)
			// Checked as the server will check it (with the reference IPAM
			// for the addresses; the image's own is checked at boot).
			if _, err := firstboot.Resolve(seed, "unknown-serial", *sabakan.ReferenceIPAM()); err != nil {
				return cli.UsageError("%v", err)
			}
			data, err := yaml.Marshal(seed)
			if err != nil {
				return err
			}
			return WriteSeed(cmd.Context(), args[0], data)
		},
	}
	f := cmd.Flags()
	f.UintVar(&rack, "rack", 0, "the server's rack (its logical rack number in neco setup); required")
	f.UintVar(&index, "index", 0, "the server's index in the rack (default: the IPAM's node-index-offset)")
	f.StringVar(&seed.Serial, "serial", "", "the server's serial (default: the firmware's SMBIOS serial)")
	f.StringVar(&seed.Hostname, "hostname", "", "the host name (default: boot-<rack>)")
	f.StringArrayVar(&keyFiles, "ssh-keys", nil, "an authorized_keys `file` whose keys the operator gets (repeatable)")
	return cmd
}

// WriteSeed writes data as neco/seed.yml on the ESP of disk (the image's
// first partition, at 1 MiB).
func WriteSeed(ctx context.Context, disk string, data []byte) error {
	tmp, err := os.MkdirTemp("", "neco-seed-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "seed.yml")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		return err
	}
	img := fmt.Sprintf("%s@@%d", disk, mib)
	out, err := exec.CommandContext(ctx, "mcopy", "-o", "-i", img, src, "::/neco/seed.yml").CombinedOutput()
	if err != nil {
		return fmt.Errorf("write the seed into %s: %w\n%s", disk, err, bytes.TrimSpace(out))
	}
	return nil
}
