package neco

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Window is a set of minutes given by a standard five-field cron expression
// (minute hour day-of-month month day-of-week): "* 9-16 * * 1-5" is every
// minute from 09:00 to 16:59 on weekdays. Fields take *, numbers, ranges
// a-b, steps */n and a-b/n, and comma-separated lists; day-of-week runs
// 0-7 with both 0 and 7 for Sunday. As in cron, when both day fields are
// restricted a day matching either one is in the window. The zero Window,
// from an empty expression, contains every minute.
type Window struct {
	expr                          string
	minute, hour, dom, month, dow uint64
	domStar, dowStar              bool
}

var windowFields = []struct {
	name   string
	lo, hi int
}{{"minute", 0, 59}, {"hour", 0, 23}, {"day of month", 1, 31}, {"month", 1, 12}, {"day of week", 0, 7}}

// ParseWindow parses a cron expression; "" is the window of all time.
func ParseWindow(expr string) (Window, error) {
	expr = strings.TrimSpace(expr)
	if expr == "" {
		return Window{}, nil
	}
	fields := strings.Fields(expr)
	if len(fields) != 5 {
		return Window{}, fmt.Errorf("cron expression %q has %d fields, want 5 (minute hour day-of-month month day-of-week)", expr, len(fields))
	}
	w := Window{expr: expr}
	sets := []*uint64{&w.minute, &w.hour, &w.dom, &w.month, &w.dow}
	for i, f := range fields {
		set, err := parseCronField(f, windowFields[i].lo, windowFields[i].hi)
		if err != nil {
			return Window{}, fmt.Errorf("cron expression %q: %s field %q: %w", expr, windowFields[i].name, f, err)
		}
		*sets[i] = set
	}
	if w.dow&(1<<7) != 0 {
		w.dow |= 1
	}
	w.domStar = fields[2] == "*"
	w.dowStar = fields[4] == "*"
	return w, nil
}

func parseCronField(f string, lo, hi int) (uint64, error) {
	var set uint64
	for _, part := range strings.Split(f, ",") {
		rng, stepStr, hasStep := strings.Cut(part, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepStr)
			if err != nil || n < 1 || n > hi {
				return 0, fmt.Errorf("bad step %q", stepStr)
			}
			step = n
		}
		a, b := lo, hi
		switch {
		case rng == "*":
		case strings.Contains(rng, "-"):
			as, bs, _ := strings.Cut(rng, "-")
			var err1, err2 error
			a, err1 = strconv.Atoi(as)
			b, err2 = strconv.Atoi(bs)
			if err1 != nil || err2 != nil || !allDigits(as) || !allDigits(bs) {
				return 0, fmt.Errorf("bad range %q", rng)
			}
		default:
			n, err := strconv.Atoi(rng)
			if err != nil || !allDigits(rng) {
				return 0, fmt.Errorf("bad value %q", rng)
			}
			a, b = n, n
			if hasStep {
				b = hi
			}
		}
		if a < lo || b > hi || a > b {
			return 0, fmt.Errorf("%q is outside %d-%d", rng, lo, hi)
		}
		for v := a; v <= b; v += step {
			set |= 1 << uint(v)
		}
	}
	if set == 0 {
		return 0, errors.New("empty")
	}
	return set, nil
}

// String is the cron expression, "" for all time.
func (w Window) String() string { return w.expr }

// Contains reports whether the minute of t (in t's location) is in w.
func (w Window) Contains(t time.Time) bool {
	if w.expr == "" {
		return true
	}
	has := func(set uint64, v int) bool { return set&(1<<uint(v)) != 0 }
	if !has(w.minute, t.Minute()) || !has(w.hour, t.Hour()) || !has(w.month, int(t.Month())) {
		return false
	}
	domOK, dowOK := has(w.dom, t.Day()), has(w.dow, int(t.Weekday()))
	switch {
	case w.domStar || w.dowStar:
		return domOK && dowOK
	default:
		return domOK || dowOK
	}
}
