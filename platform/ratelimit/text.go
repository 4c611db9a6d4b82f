package ratelimit

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MarshalText renders l as RATE/PERIOD:BURST, e.g. "10/1m0s:5", the form UnmarshalText reads
// (so a Limit can be a configuration setting).
func (l Limit) MarshalText() ([]byte, error) {
	return fmt.Appendf(nil, "%d/%s:%d", l.Rate, l.Period, l.Burst), nil
}

// UnmarshalText parses RATE/PERIOD:BURST, e.g. "10/1m:5" (10 per minute, 5 at once), and
// validates the result.
func (l *Limit) UnmarshalText(b []byte) error {
	s := string(b)
	ratePart, rest, ok1 := strings.Cut(s, "/")
	periodPart, burstPart, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 {
		return fmt.Errorf("limit %q: want RATE/PERIOD:BURST, e.g. 10/1m:5", s)
	}
	rate, err1 := strconv.Atoi(strings.TrimSpace(ratePart))
	period, err2 := time.ParseDuration(strings.TrimSpace(periodPart))
	burst, err3 := strconv.Atoi(strings.TrimSpace(burstPart))
	if err1 != nil || err2 != nil || err3 != nil {
		return fmt.Errorf("limit %q: want RATE/PERIOD:BURST, e.g. 10/1m:5", s)
	}
	parsed := Limit{Rate: rate, Period: period, Burst: burst}
	if err := parsed.Validate(); err != nil {
		return err
	}
	*l = parsed
	return nil
}
