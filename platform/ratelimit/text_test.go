package ratelimit_test

import (
	"testing"
	"time"

	"github.com/piazza-social/piazza/platform/ratelimit"
)

func TestLimitTextRoundTrips(t *testing.T) {
	var l ratelimit.Limit
	if err := l.UnmarshalText([]byte("10/1m:5")); err != nil {
		t.Fatal(err)
	}
	if l != (ratelimit.Limit{Rate: 10, Period: time.Minute, Burst: 5}) {
		t.Fatalf("parsed %+v", l)
	}
	b, _ := l.MarshalText()
	var again ratelimit.Limit
	if err := again.UnmarshalText(b); err != nil || again != l {
		t.Fatalf("round trip of %q gave %+v, %v", b, again, err)
	}
}

func TestLimitTextRejectsMalformedAndInvalidLimits(t *testing.T) {
	for _, s := range []string{"", "10", "10/1m", "x/1m:5", "10/soon:5", "10/1m:x", "0/1m:5", "10/1m:0", "10/-1m:5"} {
		var l ratelimit.Limit
		if err := l.UnmarshalText([]byte(s)); err == nil {
			t.Errorf("%q: want an error, got %+v", s, l)
		}
	}
}
