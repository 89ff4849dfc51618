package etcdutil

import (
	"context"
	"errors"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Unavailable reports whether err, from an etcd call, means that etcd could
// not answer for now rather than that it refused: no endpoint reachable, no
// leader or a leader change, the call's timeout, too many requests, or a
// member between stopping and serving. An idempotent operation that failed
// so may be tried again; a caller whose own context ended should not.
func Unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rpctypes.ErrTooManyRequests) {
		return true
	}
	st := status.Convert(err)
	code := st.Code()
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	}
	if code == codes.Unknown && strings.Contains(st.Message(), notGRPC) {
		return true
	}
	return code == codes.Unavailable || code == codes.DeadlineExceeded
}

// notGRPC is how gRPC reports an answer that is plain HTTP: etcd serves
// gRPC and HTTP on one port, and a member that is stopping or starting
// answers a gRPC call from its HTTP side.
const notGRPC = "malformed header: missing HTTP content-type"
