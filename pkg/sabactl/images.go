package sabactl

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/openneco/neco/pkg/cli"
)

func init() { register(imagesCommand) }

func imagesCommand(o *Options) *cobra.Command {
	var osName string
	cmd := &cobra.Command{
		Use:   "images",
		Short: "manage the OS images (kernel + initrd) that machines boot",
		Long: `Manage the OS images served to booting machines. An image is a kernel
and an initrd; sabakan keeps the 5 newest, replicates them to every boot
server and boots machines with the newest one present locally.`,
	}
	cmd.PersistentFlags().StringVar(&osName, "os", "coreos", "OS of the images")

	var out cli.Output
	index := &cobra.Command{
		Use:   "index",
		Short: "list the images, oldest first",
		Args:  cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			images, err := c.Images(cmd.Context(), osName)
			if err != nil {
				return err
			}
			if out == cli.OutputJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), images)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tDATE\tSIZE\tLOCAL\tSERVERS")
			for _, img := range images {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%d\n", img.ID, img.Date.UTC().Format(time.RFC3339), formatBytes(img.Size), img.Exists, len(img.URLs))
			}
			return tw.Flush()
		},
	}
	cli.AddOutputFlag(index, &out, cli.OutputJSON, cli.OutputSimple)

	upload := &cobra.Command{
		Use:   "upload ID KERNEL INITRD",
		Short: "upload an image made of a kernel file and an initrd file",
		Long: `Upload an image. ID may hold letters, digits, dots and dashes; an id that
exists or was deleted recently is refused (exit code 19). A progress bar is
drawn on a terminal.`,
		Args: cli.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			body, size, err := imageTar(args[1], args[2])
			if err != nil {
				return err
			}
			defer body.Close()
			return c.PutImage(cmd.Context(), osName, args[0], withProgress(body, cmd.ErrOrStderr(), "image "+args[0], size), size)
		},
	}
	del := &cobra.Command{
		Use:   "delete ID",
		Short: "delete an image (every boot server removes its copy)",
		Args:  cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			return c.DeleteImage(cmd.Context(), osName, args[0])
		},
	}
	cmd.AddCommand(index, upload, del)
	return cmd
}

// imageTar streams a tar of the kernel and initrd files and returns its
// exact size, which the server needs up front.
func imageTar(kernel, initrd string) (io.ReadCloser, int64, error) {
	files := []struct{ name, path string }{{"kernel", kernel}, {"initrd.gz", initrd}}
	var size int64
	var opened []*os.File
	for _, f := range files {
		fh, err := os.Open(f.path)
		if err != nil {
			for _, o := range opened {
				o.Close()
			}
			return nil, 0, err
		}
		fi, err := fh.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			fh.Close()
			return nil, 0, fmt.Errorf("%s: not a regular file", f.path)
		}
		opened = append(opened, fh)
		size += 512 + (fi.Size()+511)/512*512
	}
	size += 1024 // two zero blocks end the archive
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		var err error
		for i, fh := range opened {
			fi, _ := fh.Stat()
			if err == nil {
				err = tw.WriteHeader(&tar.Header{Name: files[i].name, Mode: 0o644, Size: fi.Size(), ModTime: fi.ModTime().Truncate(time.Second), Typeflag: tar.TypeReg, Format: tar.FormatUSTAR})
			}
			if err == nil {
				_, err = io.Copy(tw, fh)
			}
			fh.Close()
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr, size, nil
}
