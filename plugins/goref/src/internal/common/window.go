package common

import (
	"fmt"
	"time"
)

// Period is one of Kong's rate-limiting windows.
type Period struct {
	Name string // second, minute, hour, day, month, year
}

// Periods are Kong's windows, shortest first.
var Periods = []Period{{"second"}, {"minute"}, {"hour"}, {"day"}, {"month"}, {"year"}}

// Window returns the start and end (unix seconds) of the period's window
// containing now. Months and years are calendar ones in UTC, as Kong's.
func Window(period string, now time.Time) (start, end int64, err error) {
	now = now.UTC()
	var s, e time.Time
	switch period {
	case "second":
		s = now.Truncate(time.Second)
		e = s.Add(time.Second)
	case "minute":
		s = now.Truncate(time.Minute)
		e = s.Add(time.Minute)
	case "hour":
		s = now.Truncate(time.Hour)
		e = s.Add(time.Hour)
	case "day":
		s = time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
		e = s.AddDate(0, 0, 1)
	case "month":
		s = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
		e = s.AddDate(0, 1, 0)
	case "year":
		s = time.Date(now.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
		e = s.AddDate(1, 0, 0)
	default:
		return 0, 0, fmt.Errorf("unknown period %q", period)
	}
	return s.Unix(), e.Unix(), nil
}

// ResetSeconds is how many whole seconds until end, at least 1.
func ResetSeconds(end int64, now time.Time) int64 {
	d := end - now.Unix()
	if d < 1 {
		d = 1
	}
	return d
}
