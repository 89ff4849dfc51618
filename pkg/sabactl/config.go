package sabactl

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/sabakan"
)

func init() {
	register(ipamCommand)
	register(dhcpCommand)
}

// decodeConfig reads a JSON configuration file strictly.
func decodeConfig(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid configuration file: %w", err)
	}
	return nil
}

func ipamCommand(o *Options) *cobra.Command {
	cmd := &cobra.Command{Use: "ipam", Short: "get or set the IPAM configuration"}
	var file string
	set := &cobra.Command{
		Use:   "set -f FILE",
		Short: "set the IPAM configuration from a JSON file (refused once machines are registered)",
		Args:  cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := readInput(cmd, file)
			if err != nil {
				return err
			}
			var cfg sabakan.IPAMConfig
			if err := decodeConfig(data, &cfg); err != nil {
				return err
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			return c.SetIPAM(cmd.Context(), &cfg)
		},
	}
	set.Flags().StringVarP(&file, "file", "f", "", "JSON file of the IPAM configuration (- for standard input)")
	get := &cobra.Command{
		Use:   "get",
		Short: "show the IPAM configuration as JSON",
		Args:  cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			cfg, err := c.IPAM(cmd.Context())
			if err != nil {
				return err
			}
			return cli.PrintJSON(cmd.OutOrStdout(), cfg)
		},
	}
	cmd.AddCommand(set, get)
	return cmd
}

func dhcpCommand(o *Options) *cobra.Command {
	cmd := &cobra.Command{Use: "dhcp", Short: "get or set the DHCP configuration"}
	var file string
	set := &cobra.Command{
		Use:   "set -f FILE",
		Short: "set the DHCP configuration from a JSON file",
		Args:  cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := readInput(cmd, file)
			if err != nil {
				return err
			}
			var cfg sabakan.DHCPConfig
			if err := decodeConfig(data, &cfg); err != nil {
				return err
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			return c.SetDHCP(cmd.Context(), &cfg)
		},
	}
	set.Flags().StringVarP(&file, "file", "f", "", "JSON file of the DHCP configuration (- for standard input)")
	get := &cobra.Command{
		Use:   "get",
		Short: "show the DHCP configuration as JSON",
		Args:  cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			cfg, err := c.DHCP(cmd.Context())
			if err != nil {
				return err
			}
			return cli.PrintJSON(cmd.OutOrStdout(), cfg)
		},
	}
	cmd.AddCommand(set, get)
	return cmd
}
