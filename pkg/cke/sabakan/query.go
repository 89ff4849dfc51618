package sabakan

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// searchQuery asks for every machine but the boot servers, with the fields
// the generator uses (the reference engine's query, retired machines
// included so that their nodes are removed by the rules).
const searchQuery = `query ckeSearch($notHaving: MachineParams) {
  searchMachines(notHaving: $notHaving) {
    spec { serial labels { name value } rack indexInRack role ipv4 registerDate retireDate }
    status { state duration }
  }
}`

// maxAnswer bounds the answer read (about 1 KiB per machine).
const maxAnswer = 64 << 20

// Query asks sabakan at baseURL (e.g. http://10.69.0.3:10080) for the
// machines. An answer with GraphQL errors is an error: a partial list
// would make nodes look gone.
func Query(ctx context.Context, client *http.Client, baseURL string) ([]Machine, error) {
	body, _ := json.Marshal(map[string]any{
		"query":     searchQuery,
		"variables": map[string]any{"notHaving": map[string]any{"roles": []string{"boot"}}},
	})
	url := strings.TrimSuffix(baseURL, "/") + "/graphql"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("sabakan: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sabakan: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("sabakan: read %s: %w", url, err)
	}
	if len(data) > maxAnswer {
		return nil, fmt.Errorf("sabakan: %s: answer larger than %d bytes", url, maxAnswer)
	}
	var answer struct {
		Data struct {
			SearchMachines []Machine `json:"searchMachines"`
		} `json:"data"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(data, &answer); err != nil {
		return nil, fmt.Errorf("sabakan: %s answered %s: %w", url, resp.Status, err)
	}
	if len(answer.Errors) > 0 {
		return nil, fmt.Errorf("sabakan: %s: %s", url, answer.Errors[0].Message)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("sabakan: %s answered %s", url, resp.Status)
	}
	return answer.Data.SearchMachines, nil
}
