package ckecli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/cke/resources"
	"github.com/openneco/neco/pkg/cke/storage"
	"github.com/openneco/neco/pkg/cli"
)

func newResourceCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "resource",
		Short: "manage the Kubernetes objects the engine applies to the cluster",
		Long: `Resources are Kubernetes objects (RBAC, namespaces, configuration, ...) that
the engine applies to the cluster with server-side apply, in dependency order
(namespaces and RBAC first), whenever they change. Each is stored under its
key KIND/NAMESPACE/NAME, or KIND/NAME when it has no namespace.`,
	}
	var listOut cli.Output
	list := &cobra.Command{
		Use:   "list",
		Short: "list the keys of the stored resources, in the order the engine applies them",
		Args:  cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withStorage(cmd.Context(), func(ctx context.Context, st *storage.Storage) error {
				keys, err := resourceKeys(ctx, st)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				return printData(w, listOut, keys, func() error {
					for _, k := range keys {
						fmt.Fprintln(w, k)
					}
					return nil
				})
			})
		},
	}
	addOutputFlag(list, &listOut, outText, outJSON, outYAML)

	set := &cobra.Command{
		Use:   "set FILE",
		Short: "store the resources of a YAML file (FILE, or - for standard input); all or none",
		Long: `set reads one or more YAML documents separated by --- lines, each one
Kubernetes object, and stores each under its key, replacing a resource of
the same key. Every document is checked first (apiVersion, kind,
metadata.name, no key twice); if any is wrong nothing is stored (exit code 2).
All documents are stored in one etcd transaction, at most ` + fmt.Sprint(storage.MaxResourcesPerPut) + ` at once.`,
		Example: `  ckecli resource set rbac.yml
  kubectl create configmap x --from-file=a.conf --dry-run=client -o yaml | ckecli resource set -`,
		Args: cli.ExactArgs(1),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return []string{"yml", "yaml"}, cobra.ShellCompDirectiveFilterFileExt
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if name == "-" {
				name = "standard input"
			}
			data, err := readInput(cmd, args[0])
			if err != nil {
				return err
			}
			res, err := parseResources(data)
			if err != nil {
				return &invalidError{what: name + " has invalid resources", err: err}
			}
			return o.withStorage(cmd.Context(), func(ctx context.Context, st *storage.Storage) error {
				return st.PutResources(ctx, res)
			})
		},
	}
	complete := o.completeFromStorage(resourceKeys)
	get := &cobra.Command{
		Use:               "get KEY",
		Short:             "print a stored resource",
		Example:           `  ckecli resource get ClusterRole/psp:restricted`,
		Args:              cli.ExactArgs(1),
		ValidArgsFunction: complete,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withStorage(cmd.Context(), func(ctx context.Context, st *storage.Storage) error {
				cfg, err := st.ReadConfig(ctx)
				if err != nil {
					return err
				}
				m, ok := cfg.Resources[args[0]]
				if !ok {
					return fmt.Errorf("resource %s: %w (ckecli resource list shows the keys)", args[0], cke.ErrNotFound)
				}
				_, err = cmd.OutOrStdout().Write(m)
				return err
			})
		},
	}
	del := &cobra.Command{
		Use:   "delete KEY",
		Short: "stop managing a resource (the object stays in Kubernetes)",
		Long: `delete removes a resource from the engine's declaration: the engine no longer
applies it. The object itself stays in the cluster; delete it with kubectl
if it must go.`,
		Args:              cli.ExactArgs(1),
		ValidArgsFunction: complete,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withStorage(cmd.Context(), func(ctx context.Context, st *storage.Storage) error {
				return st.DeleteResource(ctx, args[0])
			})
		},
	}
	cmd.AddCommand(list, set, get, del)
	return cmd
}

func resourceKeys(ctx context.Context, st *storage.Storage) ([]string, error) {
	cfg, err := st.ReadConfig(ctx)
	if err != nil {
		return nil, err
	}
	return resources.Sorted(slices.Collect(maps.Keys(cfg.Resources))), nil
}

// parseResources splits a multi-document YAML file into its documents by
// key. Every problem is reported (joined, wrapping cke.ErrInvalid).
func parseResources(data []byte) (map[string][]byte, error) {
	out := map[string][]byte{}
	var errs []error
	for _, d := range splitDocuments(data) {
		key, err := resources.Key(d.body)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("document at line %d: %w", d.line, err))
		case out[key] != nil:
			errs = append(errs, fmt.Errorf("document at line %d: %s is already defined by an earlier document", d.line, key))
		default:
			out[key] = d.body
		}
	}
	if len(errs) == 0 && len(out) == 0 {
		errs = append(errs, errors.New("no document"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", cke.ErrInvalid, errors.Join(errs...))
	}
	return out, nil
}

type document struct {
	line int // where it starts, from 1
	body []byte
}

// splitDocuments splits YAML at the lines that start a document ("---",
// alone or followed by a comment); documents with nothing but blanks and
// comments are dropped. Each body ends with one newline.
func splitDocuments(data []byte) []document {
	var docs []document
	var cur []string
	start := 1
	flush := func() {
		body := strings.TrimSpace(strings.Join(cur, "\n"))
		empty := true
		for l := range strings.SplitSeq(body, "\n") {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
				empty = false
				break
			}
		}
		if !empty {
			docs = append(docs, document{line: start, body: []byte(body + "\n")})
		}
		cur = nil
	}
	lines := strings.Split(string(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))), "\n")
	for i, l := range lines {
		if rest, ok := strings.CutPrefix(l, "---"); ok && (strings.TrimSpace(rest) == "" || strings.HasPrefix(strings.TrimSpace(rest), "#")) {
			flush()
			start = i + 2
			continue
		}
		if len(cur) == 0 && strings.TrimSpace(l) == "" {
			start = i + 2 // report the line where the document's text starts
			continue
		}
		cur = append(cur, l)
	}
	flush()
	return docs
}
