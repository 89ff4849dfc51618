//go:build dctest

package dctest

import (
	"bufio"
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/openneco/neco/pkg/testutil"
)

// conformanceSkips is the explicit list of the pinned Kubernetes'
// [Conformance] specs that are not selected, each under the reason.
const conformanceSkips = "conformance-skips.txt"

// conformanceSmoke is what `make dctest` (CI) runs: a focus that fits its
// budget (43 specs): Services, the cluster DNS and the pods' network as the
// upstream tests see them, the container runtime on the nodes, namespaces'
// deletion (Serial) and watches. `make conformance` (CONFORMANCE=full) runs
// every selected spec.
const conformanceSmoke = `\[sig-network\] (Services|Networking|DNS) .*\[Conformance\]|\[sig-node\] Container Runtime .*\[Conformance\]|\[sig-api-machinery\] (Namespaces|Watchers) .*\[Conformance\]`

// TestConformance runs the upstream [Conformance] tests of the pinned
// Kubernetes (bin/e2e.test, make e2e) on the data center's cluster, from
// boot-0's network (the operators' place), in parallel with ginkgo. Every
// selected spec must pass. See docs/conformance.md.
func TestConformance(t *testing.T) {
	e2e, err := exec.LookPath("e2e.test")
	if err != nil {
		t.Fatalf("e2e.test: %v (make e2e builds it)", err)
	}
	ginkgo, err := exec.LookPath("ginkgo")
	if err != nil {
		t.Fatalf("ginkgo: %v (make e2e builds it)", err)
	}
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatal(err)
	}

	// The skip list names specs of the pinned version only.
	out, err := exec.Command(e2e, "--list-conformance-tests").Output()
	if err != nil {
		t.Fatalf("e2e.test --list-conformance-tests: %v", err)
	}
	var specs []struct {
		Codename string `json:"codename"`
	}
	if err := yaml.Unmarshal(out, &specs); err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, s := range specs {
		known[s.Codename] = true
	}
	skips, err := readSkips(conformanceSkips)
	if err != nil {
		t.Fatal(err)
	}
	var skipRes []string
	for spec := range skips {
		if !known[spec] {
			t.Errorf("%s names a spec that is not a [Conformance] test of this Kubernetes: %q", conformanceSkips, spec)
		}
		skipRes = append(skipRes, regexp.QuoteMeta(spec))
	}
	sort.Strings(skipRes)
	if t.Failed() {
		t.FailNow()
	}

	d := necoDC(t)
	ctx := context.Background()
	ensureKubernetes(t, d)
	focus, nodes, full := conformanceSmoke, 3, os.Getenv("CONFORMANCE") == "full"
	if full {
		focus, nodes = `\[Conformance\]`, 4
	}

	// A kubeconfig of the cluster's administrator for the run.
	boot0 := d.BootServers()[0]
	kc, err := d.In.Run(ctx, boot0, "sh", "-c", "VAULT_TOKEN=$(neco vault login) ckecli kubernetes issue --ttl 12h")
	if err != nil {
		t.Fatalf("ckecli kubernetes issue: %v\n%s", err, kc)
	}
	// CONFORMANCE_DIR keeps the run's log and reports; by default they
	// go with the test.
	dir := os.Getenv("CONFORMANCE_DIR")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	reports := filepath.Join(dir, "reports")

	args := []string{"--net=" + machineNetns(t, d, boot0, ""), "--", ginkgo, "-p", fmt.Sprintf("--procs=%d", nodes),
		"--timeout=6h", "--no-color", "--succinct", e2e, "--",
		"--kubeconfig=" + kubeconfig, "--provider=skeleton", "--kubectl-path=" + kubectl,
		"--ginkgo.focus=" + focus, "--ginkgo.skip=" + strings.Join(skipRes, "|"),
		"--report-dir=" + reports, "--disable-log-dump", "--e2e-output-dir=" + filepath.Join(dir, "output"),
		"--non-blocking-taints=node-role.kubernetes.io/control-plane,cke.cybozu.com/state"}
	cmd := exec.Command("nsenter", args...)
	cmd.Dir = dir
	testutil.DieWithTest(cmd)
	log, err := os.Create(filepath.Join(dir, "e2e.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	start := time.Now()
	t.Logf("running e2e.test (focus %s, %d skipped by %s, %d processes); log %s", focus, len(skips), conformanceSkips, nodes, log.Name())
	runErr := cmd.Run()
	took := time.Since(start)

	res, err := readJUnit(reports)
	if err != nil {
		tail, _ := exec.Command("tail", "-n", "80", log.Name()).Output()
		t.Fatalf("e2e.test: %v; its reports: %v\n%s", runErr, err, tail)
	}
	t.Logf("conformance (%s focus): %d of %d [Conformance] specs selected, %d passed, %d failed; %d skipped by the list; in %s",
		map[bool]string{true: "full", false: "smoke"}[full], res.ran, len(specs), res.passed, len(res.failed), len(skips), took.Round(time.Second))
	for _, f := range res.failed {
		t.Errorf("failed: %s\n%s", f.name, f.message)
	}
	if runErr != nil && len(res.failed) == 0 {
		tail, _ := exec.Command("tail", "-n", "80", log.Name()).Output()
		t.Errorf("e2e.test: %v\n%s", runErr, tail)
	}
	if res.ran == 0 {
		t.Error("no spec ran")
	}
	report(t, map[string]any{"conformance_full": full, "conformance_specs": len(specs), "conformance_skipped_by_list": len(skips),
		"conformance_ran": res.ran, "conformance_passed": res.passed, "conformance_failed": len(res.failed), "conformance_s": took.Seconds()})
}

// readSkips reads the skip list: blocks separated by blank lines, each a
// "# reason" line then the specs' full names, one per line.
func readSkips(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	skips := map[string]string{}
	reason := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
			reason = ""
		case strings.HasPrefix(line, "#"):
			if r := strings.TrimSpace(strings.TrimPrefix(line, "#")); reason == "" && r != "" {
				reason = r
			}
		case reason == "":
			return nil, fmt.Errorf("%s:%d: a spec with no reason above it: %s", path, n, line)
		case skips[line] != "":
			return nil, fmt.Errorf("%s:%d: listed twice: %s", path, n, line)
		default:
			skips[line] = reason
		}
	}
	return skips, sc.Err()
}

type junitResult struct {
	ran, passed int
	failed      []junitFailure
}

type junitFailure struct{ name, message string }

// readJUnit sums the JUnit reports in dir (specs that were filtered out
// are reported as skipped and not counted; a spec in several reports counts
// once).
func readJUnit(dir string) (junitResult, error) {
	var r junitResult
	files, _ := filepath.Glob(filepath.Join(dir, "junit*.xml"))
	if len(files) == 0 {
		return r, fmt.Errorf("no JUnit report in %s", dir)
	}
	seen := map[string]bool{}
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			return r, err
		}
		var doc struct {
			Suites []struct {
				Cases []struct {
					Name    string     `xml:"name,attr"`
					Skipped *struct{}  `xml:"skipped"`
					Failure *junitText `xml:"failure"`
					Error   *junitText `xml:"error"`
				} `xml:"testcase"`
			} `xml:"testsuite"`
		}
		if err := xml.Unmarshal(data, &doc); err != nil {
			return r, fmt.Errorf("%s: %w", path, err)
		}
		for _, s := range doc.Suites {
			for _, c := range s.Cases {
				if c.Skipped != nil || !strings.Contains(c.Name, "[Conformance]") || seen[c.Name] {
					continue
				}
				seen[c.Name] = true
				r.ran++
				switch {
				case c.Failure != nil:
					r.failed = append(r.failed, junitFailure{c.Name, c.Failure.String()})
				case c.Error != nil:
					r.failed = append(r.failed, junitFailure{c.Name, c.Error.String()})
				default:
					r.passed++
				}
			}
		}
	}
	return r, nil
}

// junitText is a failure or an error of a JUnit test case.
type junitText struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// String is the message and the start of the text (the whole is in
// e2e.test's log).
func (j *junitText) String() string {
	text := strings.TrimSpace(j.Text)
	if len(text) > 1500 {
		text = text[:1500] + " …"
	}
	return strings.TrimSpace(j.Message + "\n" + text)
}
