package etcdutil_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/openneco/neco/pkg/etcdutil"
)

func TestUnavailable(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("lock etcd restarts: %w", err) }
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{wrap(context.DeadlineExceeded), true},
		{wrap(rpctypes.ErrLeaderChanged), true},
		{rpctypes.ErrNoLeader, true},
		{wrap(rpctypes.ErrTimeout), true},
		{rpctypes.ErrTimeoutDueToLeaderFail, true},
		{rpctypes.ErrTooManyRequests, true},
		{wrap(status.Error(codes.Unavailable, "connection refused")), true},
		{wrap(context.Canceled), false},
		{rpctypes.ErrCompacted, false},
		{wrap(rpctypes.ErrPermissionDenied), false},
		{rpctypes.ErrMemberNotFound, false},
		{errors.New("dpkg failed"), false},
	} {
		if got := etcdutil.Unavailable(tt.err); got != tt.want {
			t.Errorf("Unavailable(%v) = %t, want %t", tt.err, got, tt.want)
		}
	}
}
