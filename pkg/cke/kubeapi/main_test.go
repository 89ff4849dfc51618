package kubeapi_test

import (
	"os"
	"testing"

	"github.com/openneco/neco/pkg/cke/kubeapi/kubetest"
)

// The tests share one API server: each keeps to its own objects.
func TestMain(m *testing.M) {
	os.Exit(kubetest.Main(m))
}
