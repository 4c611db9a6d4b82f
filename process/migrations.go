package process

import (
	"github.com/piazza-social/piazza/platform/cassandra"
	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/events/outbox"
	"github.com/piazza-social/piazza/services/deadletter"
	"github.com/piazza-social/piazza/services/messaging"
	"github.com/piazza-social/piazza/services/notification"
	"github.com/piazza-social/piazza/services/post"
	presencesvc "github.com/piazza-social/piazza/services/presence"
	"github.com/piazza-social/piazza/services/user"
)

// RelationalMigrations lists, per service, the migration sets of its relational database, in
// the order they apply. The embedded default applies them at start-up; in distributed mode
// `piazza migrate postgres` (a one-shot job that runs before the services) does, and each
// service only checks that its database is up to date.
var RelationalMigrations = map[string][]database.MigrationSet{
	"user":         {user.Migrations, outbox.Migrations},
	"post":         {post.Migrations, outbox.Migrations},
	"notification": {notification.Migrations},
	"presence":     {presencesvc.Migrations},
	"deadletter":   {deadletter.Migrations},
}

// embeddedOnlyMigrations are the relational sets of services that use another store when
// distributed: messaging-service keeps its data in Cassandra there, in SQLite embedded.
var embeddedOnlyMigrations = map[string][]database.MigrationSet{
	"messaging": {messaging.Migrations, outbox.Migrations},
}

// CassandraMigrations holds, per service, the migration set of its Cassandra tables. All sets
// live in one keyspace (--cassandra-keyspace); `piazza migrate cassandra` (the
// messaging-migration job) creates it and applies them, and a service only checks
// cassandra.Status at start.
var CassandraMigrations = map[string]cassandra.MigrationSet{
	"messaging": messaging.CassandraMigrations,
}
