package kubetest

import (
	"errors"
	"os"
	"testing"

	"github.com/openneco/neco/pkg/cke/kubeapi"
)

// Start's cluster serves until its test ends, and then is gone: processes
// and files.
func TestStart(t *testing.T) {
	var c *Cluster
	t.Run("serve", func(t *testing.T) {
		c = Start(t)
		client := c.Client(t)
		if err := client.Readyz(t.Context()); err != nil {
			t.Fatal(err)
		}
		// A user of IssueClient's is who its certificate says.
		var review struct {
			Status struct {
				UserInfo struct {
					Username string   `json:"username"`
					Groups   []string `json:"groups"`
				} `json:"userInfo"`
			} `json:"status"`
		}
		dave, err := kubeapi.New(c.ClientConfig(t, "dave", "team-a", "team-b"))
		if err != nil {
			t.Fatal(err)
		}
		defer dave.Close()
		body := []byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`)
		if err := dave.Do(t.Context(), "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", "application/json", body, &review); err != nil {
			t.Fatal(err)
		}
		u := review.Status.UserInfo
		if u.Username != "dave" || len(u.Groups) < 2 || u.Groups[0] != "team-a" || u.Groups[1] != "team-b" {
			t.Errorf("user %+v, want dave in team-a and team-b", u)
		}
		ns := c.Namespace(t)
		if err := client.Get(t.Context(), "/api/v1/namespaces/"+ns, nil); err != nil {
			t.Errorf("namespace %s: %v", ns, err)
		}
	})
	if c == nil {
		return
	}
	for name, p := range map[string]*process{"etcd": c.etcd, "kube-apiserver": c.apiserver} {
		select {
		case <-p.exited:
		default:
			t.Errorf("%s runs after the test", name)
		}
	}
	if _, err := os.Stat(c.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s stays after the test: %v", c.dir, err)
	}
}
