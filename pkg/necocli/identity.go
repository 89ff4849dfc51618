package necocli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/firstboot"
)

// exitInvalidSeed is neco identity apply's exit code for a seed that
// cannot give an identity.
const exitInvalidSeed = 3

func newIdentityCommand() *cobra.Command {
	var root string
	var out cli.Output
	paths := func() firstboot.Paths {
		p := firstboot.Default()
		if root == "/" {
			return p
		}
		for _, f := range []*string{&p.SeedFile, &p.Cmdline, &p.SMBIOSSerial, &p.IPAM, &p.Identity, &p.Hostname, &p.AuthorizedKeys} {
			*f = filepath.Join(root, *f)
		}
		return p
	}
	cmd := &cobra.Command{
		Use:   "identity",
		Short: "the boot server's identity (rack, index, serial), given at first boot",
		Long: `A boot server installed from the neco image gets its identity at first
boot, from a seed rather than from the image (see docs/installer.md):

  /boot/efi/neco/seed.yml      rack, index-in-rack, serial, hostname,
                               ssh-authorized-keys (YAML; on the EFI
                               system partition, writable before first boot)
  kernel command line          neco.rack=, neco.index=, neco.serial=,
                               neco.hostname= (win over the file)
  SMBIOS                       the serial, when the seed sets none

The identity is the BGP node agent's identity file /etc/neco/identity.json
(the machine and the site's IPAM, /etc/neco/ipam.json); the node address
follows from it. Once written it is kept: a later seed that says otherwise
is a warning. neco-identity.service runs "neco identity apply" at every boot.`,
	}
	apply := &cobra.Command{
		Use:   "apply",
		Short: "apply the seed once; keep the identity on later boots",
		Long: `Reads and checks the seed and, if this server has no identity yet, writes
the host name, the seed's SSH keys for the operator and the identity file,
in that order and each atomically. A seed that is missing, malformed or does
not fit the site's IPAM writes nothing.

Exit codes: 0 identity applied or kept, 3 invalid seed, 1 other failures.`,
		Args: cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := firstboot.Apply(paths())
			if errors.Is(err, firstboot.ErrInvalidSeed) {
				return cli.WithCode(exitInvalidSeed, fmt.Errorf("this boot server has no identity: %w; nothing was written: correct /boot/efi/neco/seed.yml or the neco.* kernel parameters and run neco identity apply (or reboot)", err))
			}
			if err != nil {
				return err
			}
			if r.Applied && root == "/" {
				if err := unix.Sethostname([]byte(r.Hostname)); err != nil {
					return fmt.Errorf("set the host name: %w", err)
				}
			}
			return printIdentity(cmd.OutOrStdout(), out, r)
		},
	}
	show := &cobra.Command{
		Use:   "show",
		Short: "show the identity applied at first boot",
		Long:  "Exit codes: 0 shown, 1 no identity yet or unreadable.",
		Args:  cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p := paths()
			data, err := os.ReadFile(p.Identity)
			if err != nil {
				return fmt.Errorf("no identity yet (%w): see neco identity apply", err)
			}
			src, err := firstboot.ParseIdentityFile(data)
			if err != nil {
				return fmt.Errorf("%s: %w", p.Identity, err)
			}
			host, _ := os.ReadFile(p.Hostname)
			s := src.Machine.Spec
			r := &firstboot.Result{Serial: s.Serial, Rack: s.Rack, Index: s.IndexInRack, Hostname: strings.TrimSpace(string(host))}
			if a := src.IPAM.NodeAddresses(s.Rack, s.IndexInRack); len(a) > 0 {
				r.Node = a[0].String()
			}
			return printIdentity(cmd.OutOrStdout(), out, r)
		},
	}
	for _, c := range []*cobra.Command{apply, show} {
		c.Flags().StringVar(&root, "root", "/", "the file system root the paths are under (an image's tree, tests)")
		cli.AddOutputFlag(c, &out, cli.OutputSimple, cli.OutputJSON)
		cmd.AddCommand(c)
	}
	return cmd
}

func printIdentity(w io.Writer, out cli.Output, r *firstboot.Result) error {
	if out == cli.OutputJSON {
		return cli.PrintJSON(w, r)
	}
	verb := "kept"
	if r.Applied {
		verb = "applied"
	}
	fmt.Fprintf(w, "identity %s: %s, serial %s, rack %d, index %d, node address %s\n", verb, r.Hostname, r.Serial, r.Rack, r.Index, r.Node)
	if r.Warning != "" {
		fmt.Fprintf(w, "warning: %s\n", r.Warning)
	}
	return nil
}
