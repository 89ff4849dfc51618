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
		{wrap(rpctypes.ErrTimeoutDueToConnectionLost), true},
		{rpctypes.ErrTooManyRequests, true},
		{wrap(status.Error(codes.Unavailable, "connection refused")), true},
		// A member restarting answered a gRPC call from its HTTP side.
		{wrap(status.Error(codes.Unknown, "unexpected HTTP status code received from server: 200 (OK); malformed header: missing HTTP content-type")), true},
		{status.Error(codes.Unknown, "something else"), false},
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
