package web

import (
	"fmt"
	"net/http"

	"github.com/openneco/neco/pkg/sabakan"
)

func (s *Server) postGraphQL(w http.ResponseWriter, r *http.Request) error {
	return fmt.Errorf("%w: graphql: not yet", sabakan.ErrUnavailable)
}
