package web

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/openneco/neco/pkg/sabakan/bootapi"
	"github.com/openneco/neco/pkg/sabakan/content"
)

// RegisterBoot adds the network boot API of package bootapi (OS images,
// assets, kernel parameters, Ignition templates and the endpoints booting
// machines call) to s, behind the same access control, actor and error
// rendering as every other route.
func (s *Server) RegisterBoot(api *bootapi.API) {
	for _, rt := range api.Routes() {
		h := rt.Handler
		s.Handle(rt.Method, rt.Pattern, func(w http.ResponseWriter, r *http.Request) error {
			return bootError(h(w, r))
		})
	}
}

// bootError maps the boot content's own errors to this package's.
func bootError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, content.ErrLengthRequired):
		return fmt.Errorf("%w: %v", ErrLengthRequired, err)
	case errors.Is(err, content.ErrTooLarge):
		return fmt.Errorf("%w: %v", ErrTooLarge, err)
	}
	return err
}
