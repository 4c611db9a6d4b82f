package ratelimit

import (
	"testing"
	"time"
)

func TestFullShardEvictsARecoveredKeyBeforeALimitedOne(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &memoryShard{tat: map[string]time.Time{
		"limited-1": now.Add(time.Hour),
		"recovered": now.Add(-time.Second),
		"limited-2": now.Add(2 * time.Hour),
	}, max: 3}
	s.makeRoom(now)
	if _, ok := s.tat["recovered"]; ok || len(s.tat) != 2 {
		t.Fatalf("after makeRoom: %v, want only the recovered key gone", s.tat)
	}
}

func TestFullShardWithoutRecoveredKeysEvictsTheOneNearestToRecovery(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	// Fewer entries than the sample, so all of them are looked at.
	s := &memoryShard{tat: map[string]time.Time{
		"far":     now.Add(3 * time.Hour),
		"nearest": now.Add(time.Minute),
		"middle":  now.Add(time.Hour),
	}, max: 3}
	s.makeRoom(now)
	if _, ok := s.tat["nearest"]; ok || len(s.tat) != 2 {
		t.Fatalf("after makeRoom: %v, want the key nearest to recovery evicted", s.tat)
	}
}
