package membership

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// MembersHandler serves GET /members: the member list as JSON, for the
// state setter on the same boot server.
func (a *Agent) MembersHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(a.Members())
	})
}

// Client reads the member list from an agent's /members endpoint.
type Client struct {
	// URL is the agent's base URL, e.g. http://127.0.0.1:7947.
	URL  string
	HTTP *http.Client
}

// Members fetches the member list.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/members", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("membership: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("membership: GET %s/members: %s", c.URL, resp.Status)
	}
	var ms []Member
	if err := json.NewDecoder(resp.Body).Decode(&ms); err != nil {
		return nil, fmt.Errorf("membership: decode members: %w", err)
	}
	return ms, nil
}
