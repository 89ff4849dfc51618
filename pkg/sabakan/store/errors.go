package store

import (
	"fmt"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/sabakan"
)

// etcdErr wraps an error of the etcd client. Errors that mean etcd cannot be
// reached or has no quorum also wrap sabakan.ErrUnavailable, so that the API
// answers 503 with a message naming etcd.
func etcdErr(what string, err error) error {
	if err == nil {
		return nil
	}
	if etcdutil.Unavailable(err) {
		return fmt.Errorf("%w: %s: etcd is unavailable: %v", sabakan.ErrUnavailable, what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
