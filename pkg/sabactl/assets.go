package sabactl

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/sabakan/client"
)

func init() { register(assetsCommand) }

func assetsCommand(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "assets",
		Short: "manage assets: files every boot server serves under /api/v1/assets",
		Long: `Manage assets: arbitrary files (up to 4 GiB) that machines download from
any boot server. Uploads are checked with SHA-256 and replicated to every
boot server.`,
	}
	index := &cobra.Command{
		Use:   "index",
		Short: "list the asset names",
		Args:  cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			names, err := c.Assets(cmd.Context())
			if err != nil {
				return err
			}
			return cli.PrintJSON(cmd.OutOrStdout(), names)
		},
	}
	var out cli.Output
	info := &cobra.Command{
		Use:               "info NAME",
		Short:             "show an asset's metadata",
		Args:              cli.ExactArgs(1),
		ValidArgsFunction: completeAssets(o),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			a, err := c.AssetInfo(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if out == cli.OutputJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), a)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "name\t%s\nid\t%s\ncontent-type\t%s\ndate\t%s\nsize\t%d (%s)\nsha256\t%s\nlocal\t%v\n",
				a.Name, a.ID, a.ContentType, a.Date.UTC().Format(time.RFC3339), a.Size, formatBytes(a.Size), a.SHA256, a.Exists)
			for _, u := range a.URLs {
				fmt.Fprintf(tw, "url\t%s\n", u)
			}
			for k, v := range a.Options {
				fmt.Fprintf(tw, "option\t%s=%s\n", k, v)
			}
			return tw.Flush()
		},
	}
	cli.AddOutputFlag(info, &out, cli.OutputSimple, cli.OutputJSON)

	var meta []string
	var ctype string
	upload := &cobra.Command{
		Use:   "upload [--meta KEY=VALUE]... NAME FILE",
		Short: "upload FILE as asset NAME (replacing an older version)",
		Long: `Upload FILE as asset NAME. Its SHA-256 is computed first and checked by the
server; --meta options are stored with it. A progress bar is drawn on a
terminal.`,
		Args: cli.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := map[string]string{}
			for _, kv := range meta {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return cli.UsageError("--meta %q: want KEY=VALUE", kv)
				}
				opts[k] = v
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			f, err := os.Open(args[1])
			if err != nil {
				return err
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				return err
			}
			h := sha256.New()
			if _, err := io.Copy(h, f); err != nil {
				return err
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return err
			}
			t := ctype
			if t == "" {
				t = mime.TypeByExtension(filepath.Ext(args[1]))
			}
			body := withProgress(f, cmd.ErrOrStderr(), "asset "+args[0], fi.Size())
			created, id, err := c.PutAsset(cmd.Context(), args[0], body, fi.Size(), client.AssetUpload{
				ContentType: t, SHA256: hex.EncodeToString(h.Sum(nil)), Options: opts,
			})
			if err != nil {
				return err
			}
			verb := "replaced"
			if created {
				verb = "created"
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s asset %s, id %s\n", verb, args[0], id)
			return err
		},
	}
	upload.Flags().StringArrayVar(&meta, "meta", nil, "option KEY=VALUE stored with the asset (repeatable)")
	upload.Flags().StringVar(&ctype, "content-type", "", "content type (default: from the file extension, else application/octet-stream)")

	del := &cobra.Command{
		Use:               "delete NAME",
		Short:             "delete an asset (every boot server removes its copy)",
		Args:              cli.ExactArgs(1),
		ValidArgsFunction: completeAssets(o),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			return c.DeleteAsset(cmd.Context(), args[0])
		},
	}
	cmd.AddCommand(index, info, upload, del)
	return cmd
}

func completeAssets(o *Options) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := o.Client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		names, err := c.Assets(cmd.Context())
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
