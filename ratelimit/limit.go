package ratelimit

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"golang.org/x/time/rate"
)

// Limit is a token bucket: Rate tokens come back every Per, and at most
// Burst are held (the requests a key may make at once).
type Limit struct {
	Rate  int
	Per   time.Duration
	Burst int
}

// PerSecond is the limit of perSecond events a second (a fraction
// allowed: 0.5 is one every two seconds) and burst.
func PerSecond(perSecond float64, burst int) Limit {
	if perSecond <= 0 {
		return Limit{Burst: burst}
	}
	if perSecond == math.Trunc(perSecond) && perSecond < math.MaxInt32 {
		return Limit{Rate: int(perSecond), Per: time.Second, Burst: burst}
	}
	// Counted per hour, so that a fraction keeps its precision.
	return Limit{Rate: max(int(math.Round(perSecond*3600)), 1), Per: time.Hour, Burst: burst}
}

// valid reports whether tokens ever come back (Rate and Per positive).
func (l Limit) valid() bool { return l.Rate > 0 && l.Per > 0 }

// every is the limit as x/time/rate's events per second.
func (l Limit) every() rate.Limit {
	if !l.valid() {
		return 0
	}
	return rate.Limit(float64(l.Rate) / l.Per.Seconds())
}

// String is "100/s, burst 200".
func (l Limit) String() string {
	unit := l.Per.String()
	switch l.Per {
	case time.Second:
		unit = "s"
	case time.Minute:
		unit = "m"
	case time.Hour:
		unit = "h"
	}
	return fmt.Sprintf("%d/%s, burst %d", l.Rate, unit, l.Burst)
}

// RetryAfter is a wait as the whole seconds of a Retry-After header:
// rounded up, at least 1.
func RetryAfter(d time.Duration) string {
	return strconv.Itoa(max(int(math.Ceil(d.Seconds())), 1))
}
