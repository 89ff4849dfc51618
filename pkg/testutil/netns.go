package testutil

import (
	"runtime"

	"github.com/vishvananda/netns"
)

// InNetns runs f on a thread switched to the network namespace file path
// and back; sockets made in f stay in that namespace. The thread returns
// to the runtime only once back in this process's namespace; one that
// cannot return ends with f's goroutine. (A thread that ends kills the
// processes it started with DieWithTest, so threads must not end
// needlessly.)
func InNetns(path string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		h, err := netns.GetFromPath(path)
		if err != nil {
			errc <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- err
			return
		}
		err = f()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}
