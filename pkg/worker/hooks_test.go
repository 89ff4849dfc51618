package worker

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestWithHooks(t *testing.T) {
	var order []string
	rec := func(name string, err error) func(context.Context, *StepEnv) error {
		return func(context.Context, *StepEnv) error { order = append(order, name); return err }
	}
	boom := errors.New("boom")
	tests := []struct {
		name         string
		before, step error
		want         string
		wantErr      error
	}{
		{"all run in order", nil, nil, "before,step,after", nil},
		{"a failed before skips the step", boom, nil, "before", boom},
		{"a failed step skips after", nil, boom, "before,step", boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			order = nil
			s := WithHooks(Step{Name: "x", Run: rec("step", tt.step)}, rec("before", tt.before), rec("after", nil))
			if err := s.Run(context.Background(), &StepEnv{}); !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if got := strings.Join(order, ","); got != tt.want {
				t.Errorf("ran %s, want %s", got, tt.want)
			}
			if s.Name != "x" {
				t.Errorf("name = %q", s.Name)
			}
		})
	}
}

func TestWaitHealthy(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"health":"healthy"}`))
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := WaitHealthy(srv.URL+"/health")(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("%d requests, want 3 (two 503s, then 200)", n)
	}

	// Never healthy: the step's deadline ends the wait with the last error.
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	ctx, cancel = context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	err := WaitHealthy(srv.URL+"/health")(ctx, nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "500") {
		t.Errorf("err = %v, want the deadline and the last status", err)
	}
}
