package domain_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/piazza-social/piazza/services/presence/domain"
)

var t0 = time.Date(2031, 3, 14, 15, 0, 0, 123456000, time.UTC)

func TestCursorRoundTripsAndRejectsAnythingElse(t *testing.T) {
	c := domain.Cursor{ConnectedAt: t0, ConnectionID: "conn.with.dots"}
	got, err := domain.ParseCursor(c.Encode())
	if err != nil || !got.ConnectedAt.Equal(c.ConnectedAt) || got.ConnectionID != c.ConnectionID {
		t.Fatalf("ParseCursor(Encode(%+v)) = %+v, %v", c, got, err)
	}
	if start, err := domain.ParseCursor(""); err != nil || !start.IsZero() || (domain.Cursor{}).Encode() != "" {
		t.Fatalf(`"" must be the start of the history: %+v, %v`, start, err)
	}
	for _, bad := range []string{"%%%", "bm9kb3Q", "MTIzLg", "LWE.", "MC5h", strings.Repeat("A", 300)} {
		if _, err := domain.ParseCursor(bad); !errors.Is(err, domain.ErrCursorInvalid) {
			t.Errorf("ParseCursor(%q) error = %v, want ErrCursorInvalid", bad, err)
		}
	}
}

func TestEstimatedEndIsTheLastPossibleRenewalButNeverBeforeTheStart(t *testing.T) {
	now := t0.Add(time.Hour)
	if got := domain.EstimatedEnd(t0, now, time.Minute); !got.Equal(now.Add(-time.Minute)) {
		t.Errorf("EstimatedEnd = %s, want now - ttl", got)
	}
	if got := domain.EstimatedEnd(t0, t0.Add(time.Second), time.Minute); !got.Equal(t0) {
		t.Errorf("EstimatedEnd of a session younger than the ttl = %s, want its start", got)
	}
}

func TestLastSeen(t *testing.T) {
	now := t0.Add(time.Hour)
	tests := []struct {
		name   string
		online bool
		a      domain.Activity
		want   time.Time
	}{
		{"online is now", true, domain.Activity{LastDisconnectedAt: t0}, now},
		{"never seen is zero", false, domain.Activity{}, time.Time{}},
		{"the latest disconnect", false, domain.Activity{LastDisconnectedAt: t0}, t0},
		{"an open session counts as ended at its estimate", false,
			domain.Activity{LastDisconnectedAt: t0, LatestOpenConnectedAt: t0.Add(time.Minute)}, now.Add(-time.Minute)},
		{"a later disconnect beats an open session's estimate", false,
			domain.Activity{LastDisconnectedAt: now.Add(-time.Second), LatestOpenConnectedAt: t0}, now.Add(-time.Second)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := domain.LastSeen(tc.online, now, tc.a, time.Minute); !got.Equal(tc.want) {
				t.Fatalf("LastSeen = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestPageSize(t *testing.T) {
	for in, want := range map[int]int{0: domain.DefaultPageSize, 1: 1, 100: 100} {
		if got, err := domain.PageSize(in); err != nil || got != want {
			t.Errorf("PageSize(%d) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []int{-1, 101} {
		if _, err := domain.PageSize(in); !errors.Is(err, domain.ErrPageSizeInvalid) {
			t.Errorf("PageSize(%d) error = %v, want ErrPageSizeInvalid", in, err)
		}
	}
}
