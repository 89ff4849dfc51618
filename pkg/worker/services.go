package worker

import "context"

// ServiceManager restarts and inspects the services steps act on. On a
// boot server it is pkg/services' Systemd (or, where setup runs daemons as
// processes, its Processes): the project's one wrapper of systemctl.
type ServiceManager interface {
	Restart(ctx context.Context, name string) error
	Active(ctx context.Context, name string) (bool, error)
}
