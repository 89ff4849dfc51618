package content

import (
	"context"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/sabakan"
)

// MaxKernelParamsSize bounds the kernel parameters (4 KiB).
const MaxKernelParamsSize = 4096

func kernelParamsKey(osName string) string { return "kernel-params/" + osName }

// ValidateKernelParams trims params and checks that it is printable ASCII
// of at most MaxKernelParamsSize bytes: it goes verbatim into an iPXE
// script.
func ValidateKernelParams(params string) (string, error) {
	params = strings.TrimSpace(params)
	if len(params) > MaxKernelParamsSize {
		return "", fmt.Errorf("%w: kernel parameters are longer than %d bytes", sabakan.ErrBadRequest, MaxKernelParamsSize)
	}
	for i := 0; i < len(params); i++ {
		if c := params[i]; c < 0x20 || c > 0x7e {
			return "", fmt.Errorf("%w: kernel parameters hold a non-printable or non-ASCII byte 0x%02x at %d", sabakan.ErrBadRequest, c, i)
		}
	}
	return params, nil
}

// PutKernelParams sets the kernel parameters of an OS.
func (s *Store) PutKernelParams(ctx context.Context, osName, params string) error {
	if err := checkImage(osName, "x"); err != nil {
		return err
	}
	params, err := ValidateKernelParams(params)
	if err != nil {
		return err
	}
	ops := append([]clientv3.Op{clientv3.OpPut(kernelParamsKey(osName), params)}, s.auditOps(ctx, sabakan.AuditIPXE, osName, "put-kernel-params", params)...)
	_, err = s.client.Txn(ctx).Then(ops...).Commit()
	return err
}

// KernelParams returns the kernel parameters; ErrNotFound when never set.
func (s *Store) KernelParams(ctx context.Context, osName string) (string, error) {
	if err := checkImage(osName, "x"); err != nil {
		return "", err
	}
	resp, err := s.client.Get(ctx, kernelParamsKey(osName))
	if err != nil {
		return "", err
	}
	if len(resp.Kvs) == 0 {
		return "", fmt.Errorf("%w: kernel parameters of %s", sabakan.ErrNotFound, osName)
	}
	return string(resp.Kvs[0].Value), nil
}
