package bgp

import (
	"encoding/json"
	"fmt"
	"time"
)

// Duration is a time.Duration written as "400ms" or "3s" in configuration
// files and flags.
type Duration time.Duration

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// Set parses a flag value.
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads "400ms"-style strings.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string like \"400ms\": %w", err)
	}
	return d.Set(s)
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Timers set how fast BGP and BFD notice failures and (re)establish
// sessions. Every field is rendered into the BIRD configuration explicitly.
type Timers struct {
	// BFDInterval is both the minimal receive and transmit interval of BFD
	// control packets while a session is up (BIRD: min rx/tx interval).
	BFDInterval Duration `json:"bfd-interval"`
	// BFDIdleInterval is the transmit interval while a session is not up;
	// it bounds how fast BFD comes up after start or repair.
	BFDIdleInterval Duration `json:"bfd-idle-interval"`
	// BFDMultiplier is how many intervals without a packet mean "down":
	// detection time is BFDInterval × BFDMultiplier.
	BFDMultiplier int `json:"bfd-multiplier"`
	// HoldTime and KeepaliveTime are BGP's own liveness timers (whole
	// seconds), the backstop behind BFD.
	HoldTime      Duration `json:"hold-time"`
	KeepaliveTime Duration `json:"keepalive-time"`
	// ConnectDelay is the wait between a session's start and its first
	// connection attempt (whole seconds; BIRD's default is 5 s).
	ConnectDelay Duration `json:"connect-delay"`
	// ErrorWaitMin and ErrorWaitMax bound the wait before a failed session
	// restarts; the wait doubles on consecutive failures (whole seconds).
	ErrorWaitMin Duration `json:"error-wait-min"`
	ErrorWaitMax Duration `json:"error-wait-max"`
}

// ReferenceNodeTimers are the reference deployment's node settings: BFD
// 400 ms × 5, error wait 3..300 s and BIRD's defaults for the rest.
func ReferenceNodeTimers() Timers {
	return Timers{
		BFDInterval:     Duration(400 * time.Millisecond),
		BFDIdleInterval: Duration(time.Second),
		BFDMultiplier:   5,
		HoldTime:        Duration(240 * time.Second),
		KeepaliveTime:   Duration(80 * time.Second),
		ConnectDelay:    Duration(5 * time.Second),
		ErrorWaitMin:    Duration(3 * time.Second),
		ErrorWaitMax:    Duration(300 * time.Second),
	}
}

// ReferenceRouterTimers are the reference deployment's ToR and spine
// settings: as the node's, with error wait 5..20 s.
func ReferenceRouterTimers() Timers {
	t := ReferenceNodeTimers()
	t.ErrorWaitMin = Duration(5 * time.Second)
	t.ErrorWaitMax = Duration(20 * time.Second)
	return t
}

// FastTimers are this project's defaults for nodes and routers: failure
// detection in 150 ms (BFD 50 ms × 3), the first connection attempt at once,
// a restart 1 s after a failure, and BGP hold 9 s / keepalive 3 s as the
// backstop. See docs/bgp-agent.md for the measurements behind them.
func FastTimers() Timers {
	return Timers{
		BFDInterval:     Duration(50 * time.Millisecond),
		BFDIdleInterval: Duration(100 * time.Millisecond),
		BFDMultiplier:   3,
		HoldTime:        Duration(9 * time.Second),
		KeepaliveTime:   Duration(3 * time.Second),
		ConnectDelay:    0,
		ErrorWaitMin:    Duration(time.Second),
		ErrorWaitMax:    Duration(16 * time.Second),
	}
}

// Detection is how long BFD takes to declare a silent neighbor down.
func (t Timers) Detection() time.Duration {
	return t.BFDInterval.D() * time.Duration(t.BFDMultiplier)
}

func badTimer(format string, args ...any) error {
	return fmt.Errorf("%w: timers: "+format, append([]any{ErrInvalidSettings}, args...)...)
}

// Validate checks the timers against what BGP and BIRD accept.
func (t Timers) Validate() error {
	for _, ms := range []struct {
		name string
		d    Duration
	}{{"bfd-interval", t.BFDInterval}, {"bfd-idle-interval", t.BFDIdleInterval}} {
		if ms.d.D() < time.Millisecond || ms.d.D() > time.Minute || ms.d.D()%time.Millisecond != 0 {
			return badTimer("%s %s must be whole milliseconds between 1ms and 1m", ms.name, ms.d)
		}
	}
	if t.BFDMultiplier < 1 || t.BFDMultiplier > 255 {
		return badTimer("bfd-multiplier %d is outside 1..255", t.BFDMultiplier)
	}
	for _, s := range []struct {
		name string
		d    Duration
	}{
		{"hold-time", t.HoldTime}, {"keepalive-time", t.KeepaliveTime}, {"connect-delay", t.ConnectDelay},
		{"error-wait-min", t.ErrorWaitMin}, {"error-wait-max", t.ErrorWaitMax},
	} {
		if s.d < 0 || s.d.D()%time.Second != 0 || s.d.D() > 65535*time.Second {
			return badTimer("%s %s must be whole seconds between 0s and 65535s", s.name, s.d)
		}
	}
	if t.HoldTime.D() < 3*time.Second {
		return badTimer("hold-time %s must be at least 3s", t.HoldTime)
	}
	if t.KeepaliveTime.D() < time.Second || t.KeepaliveTime > t.HoldTime/2 {
		return badTimer("keepalive-time %s must be at least 1s and at most half the hold-time %s", t.KeepaliveTime, t.HoldTime)
	}
	if t.ErrorWaitMin > t.ErrorWaitMax {
		return badTimer("error-wait-min %s is above error-wait-max %s", t.ErrorWaitMin, t.ErrorWaitMax)
	}
	return nil
}

// seconds renders a whole-second duration for BIRD.
func seconds(d Duration) int64 { return int64(d.D() / time.Second) }

// millis renders a millisecond duration for BIRD.
func millis(d Duration) int64 { return int64(d.D() / time.Millisecond) }

// BFDOptions renders the timers as the body of a BIRD BFD interface block.
func (t Timers) BFDOptions() string {
	return fmt.Sprintf("min rx interval %d ms; min tx interval %d ms; idle tx interval %d ms; multiplier %d;",
		millis(t.BFDInterval), millis(t.BFDInterval), millis(t.BFDIdleInterval), t.BFDMultiplier)
}

// BGPOptions renders the timers as BIRD BGP protocol options.
func (t Timers) BGPOptions() string {
	return fmt.Sprintf("hold time %d; keepalive time %d; connect delay time %d; error wait time %d,%d;",
		seconds(t.HoldTime), seconds(t.KeepaliveTime), seconds(t.ConnectDelay), seconds(t.ErrorWaitMin), seconds(t.ErrorWaitMax))
}
