package web

import "github.com/openneco/neco/pkg/sabakan/bootapi"

// RegisterBoot adds the network boot API of package bootapi (OS images,
// assets, kernel parameters, Ignition templates and the endpoints booting
// machines call) to s, behind the same access control, actor and error
// rendering as every other route.
func (s *Server) RegisterBoot(api *bootapi.API) {
	for _, rt := range api.Routes() {
		s.Handle(rt.Method, rt.Pattern, HandlerFunc(rt.Handler))
	}
}
