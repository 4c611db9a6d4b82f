//go:build integration

package adapters_test

import (
	"testing"

	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/infratest"
)

func openPostgres(b *testing.B) *database.DB { return openURL(b, infratest.NewPostgresDatabase(b)) }

// BenchmarkHomeTimelineOnPostgres is BenchmarkHomeTimeline on a fresh PostgreSQL database.
func BenchmarkHomeTimelineOnPostgres(b *testing.B) { benchHomeTimeline(b, openPostgres) }

// BenchmarkPublishPostOnPostgres is BenchmarkPublishPost on a fresh PostgreSQL database.
func BenchmarkPublishPostOnPostgres(b *testing.B) { benchPublishPost(b, openPostgres) }
