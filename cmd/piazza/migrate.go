package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/piazza-social/piazza/platform/cassandra"
	"github.com/piazza-social/piazza/platform/config"
	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/logging"
	"github.com/piazza-social/piazza/process"
)

const migrateUsage = `usage: piazza migrate <target> [flags]

Apply schema migrations as a one-shot job, before the services that need them start (the
services themselves only check that their schema is up to date). Running it again changes
nothing, and two copies started at once apply each step exactly once.

targets:
  postgres    apply each service's relational migration sets to the database named by its
              --<service>-database-url (user, post, notification, presence, deadletter);
              services without a URL are skipped
  cassandra   create --cassandra-keyspace if missing, then apply the Cassandra migration sets
  status      print how far each given database is; exit status 1 if anything is pending

Prints one line per migration set, "<service>/<set>: applied N (now at V)"; a failure is one
line naming the file. Progress is logged as JSON on stderr.
Run 'piazza migrate <target> -h' for the flags of a target.
`

// migratePostgresConfig names each service's database with the settings the services use, so
// the migration job and the services share one environment.
type migratePostgresConfig struct {
	UserDatabaseURL         string `flag:"user-database-url" help:"PostgreSQL URL of user-service (postgres://...; sqlite:<path> works too)"`
	PostDatabaseURL         string `flag:"post-database-url" help:"PostgreSQL URL of post-service"`
	NotificationDatabaseURL string `flag:"notification-database-url" help:"PostgreSQL URL of notification-service"`
	PresenceDatabaseURL     string `flag:"presence-database-url" help:"PostgreSQL URL of presence-service"`
	DeadLetterDatabaseURL   string `flag:"deadletter-database-url" help:"PostgreSQL URL of the dead-letter archive"`
}

// relationalServices lists the services with a relational database, in the order they are
// migrated (the order they start in).
var relationalServices = []string{"user", "post", "notification", "presence", "deadletter"}

// urls returns the database URL given for each service; services without one are absent.
func (c migratePostgresConfig) urls() map[string]string {
	out := map[string]string{}
	for service, url := range map[string]string{
		"user": c.UserDatabaseURL, "post": c.PostDatabaseURL, "notification": c.NotificationDatabaseURL,
		"presence": c.PresenceDatabaseURL, "deadletter": c.DeadLetterDatabaseURL,
	} {
		if url != "" {
			out[service] = url
		}
	}
	return out
}

// migrateCassandraConfig uses the Cassandra settings of the services (hosts, keyspace,
// credentials, local data centre) plus what only the job decides: the replication of a
// keyspace it creates and how long it waits for another migrator.
type migrateCassandraConfig struct {
	Hosts             []string      `flag:"cassandra-hosts" help:"Cassandra contact points, host[:port],... (port default 9042)"`
	Keyspace          string        `flag:"cassandra-keyspace" default:"piazza" help:"keyspace of the services' Cassandra tables"`
	Username          string        `flag:"cassandra-username" help:"Cassandra user for password authentication; empty: none"`
	Password          string        `flag:"cassandra-password" secret:"true" help:"password of --cassandra-username"`
	LocalDC           string        `flag:"cassandra-local-dc" help:"data centre to talk to (LOCAL_QUORUM); empty: any node"`
	ReplicationFactor int           `flag:"cassandra-replication-factor" default:"1" help:"SimpleStrategy replication factor of a keyspace the job creates (production: 3)"`
	DCReplication     []string      `flag:"cassandra-dc-replication" help:"NetworkTopologyStrategy factors of a keyspace the job creates, dc:factor,... (overrides --cassandra-replication-factor)"`
	LockTimeout       time.Duration `flag:"cassandra-lock-timeout" default:"5m" help:"how long to wait while another migrator holds the keyspace's migration lock"`
}

// replication returns the replication a keyspace is created with.
func (c migrateCassandraConfig) replication() (cassandra.Replication, error) {
	r := cassandra.Replication{Factor: c.ReplicationFactor}
	if c.ReplicationFactor < 1 {
		return r, dlqSettingError("cassandra-replication-factor", "must be at least 1, got %d", c.ReplicationFactor)
	}
	for _, item := range c.DCReplication {
		dc, factor, ok := strings.Cut(item, ":")
		n, err := strconv.Atoi(factor)
		if !ok || dc == "" || err != nil || n < 1 {
			return r, dlqSettingError("cassandra-dc-replication", "%q is not dc:factor with a factor of at least 1", item)
		}
		if r.DataCenters == nil {
			r.DataCenters = map[string]int{}
		}
		r.DataCenters[dc] = n
	}
	return r, nil
}

type migrateJobConfig struct {
	Timeout  time.Duration `flag:"timeout" default:"10m" help:"upper bound of the whole job"`
	LogLevel slog.Level    `flag:"log-level" default:"info" help:"level of the progress log on stderr: debug, info, warn or error"`
}

// migrateConfig holds every migrate setting; each target loads only the groups it uses, so a
// misplaced flag (a Cassandra flag given to the postgres target) is an error, not ignored.
type migrateConfig struct {
	Postgres  migratePostgresConfig
	Cassandra migrateCassandraConfig
	Job       migrateJobConfig
}

// migrationSets are the sets the command applies: process's in the binary, throwaway ones in
// tests.
type migrationSets struct {
	// relational lists each service's sets, in the order they apply.
	relational map[string][]database.MigrationSet
	// cassandra holds each service's set; all share --cassandra-keyspace.
	cassandra map[string]cassandra.MigrationSet
}

// runMigrate runs `piazza migrate <target> ...` with the binary's migration sets.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) error {
	return migrate(ctx, args, stdout, stderr, lookupEnv,
		migrationSets{relational: process.RelationalMigrations, cassandra: process.CassandraMigrations})
}

func migrate(ctx context.Context, args []string, stdout, stderr io.Writer, lookupEnv func(string) (string, bool), sets migrationSets) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, migrateUsage)
		return flag.ErrHelp
	}
	target, args := args[0], args[1:]
	var cfg migrateConfig
	var err error
	switch target {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, migrateUsage)
		return nil
	case "postgres":
		var s struct {
			Postgres migratePostgresConfig
			Job      migrateJobConfig
		}
		err = loadMigrateConfig(target, &s, args, stderr, lookupEnv)
		cfg.Postgres, cfg.Job = s.Postgres, s.Job
	case "cassandra":
		var s struct {
			Cassandra migrateCassandraConfig
			Job       migrateJobConfig
		}
		err = loadMigrateConfig(target, &s, args, stderr, lookupEnv)
		cfg.Cassandra, cfg.Job = s.Cassandra, s.Job
	case "status":
		err = loadMigrateConfig(target, &cfg, args, stderr, lookupEnv)
	default:
		fmt.Fprint(stderr, migrateUsage)
		return fmt.Errorf("unknown migrate target %q (want postgres, cassandra or status)", target)
	}
	if err != nil {
		return err
	}

	log := logging.New(stderr, logging.Config{Level: cfg.Job.LogLevel}).With(slog.String("command", "piazza migrate "+target))
	ctx, cancel := context.WithTimeout(ctx, cfg.Job.Timeout)
	defer cancel()
	switch target {
	case "postgres":
		if len(cfg.Postgres.urls()) == 0 {
			return errors.New("migrate postgres: give the database of at least one service: " +
				"--user-database-url, --post-database-url, --notification-database-url, --presence-database-url or --deadletter-database-url " +
				"(or the PIAZZA_..._DATABASE_URL variables)")
		}
		return migratePostgres(ctx, cfg.Postgres, sets.relational, stdout, log)
	case "cassandra":
		if len(cfg.Cassandra.Hosts) == 0 {
			return dlqSettingError("cassandra-hosts", "required: the Cassandra contact points")
		}
		return migrateCassandra(ctx, cfg.Cassandra, sets.cassandra, stdout, log)
	default:
		if len(cfg.Postgres.urls()) == 0 && len(cfg.Cassandra.Hosts) == 0 {
			return errors.New("migrate status: give at least one database: a --<service>-database-url or --cassandra-hosts")
		}
		return migrateStatus(ctx, cfg, sets, stdout, log)
	}
}

// loadMigrateConfig fills settings from defaults, the environment and args, printing the
// target's flags on -h.
func loadMigrateConfig(target string, settings any, args []string, stderr io.Writer, lookupEnv func(string) (string, bool)) error {
	fs := flag.NewFlagSet("piazza migrate "+target, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	err := config.Load(fs, settings, config.Source{Prefix: "PIAZZA", Args: args, LookupEnv: lookupEnv})
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stderr)
		fmt.Fprintf(stderr, "usage: piazza migrate %s [flags]\n\n", target)
		fs.PrintDefaults()
		return err
	}
	if err == nil && fs.NArg() > 0 {
		return fmt.Errorf("migrate %s: unexpected argument %q", target, fs.Arg(0))
	}
	return err
}

// relationalDatabase is the open database of one service.
type relationalDatabase struct {
	service string
	db      *database.DB
}

// openRelational opens the database of each service with a URL, once per distinct URL
// (services may share one), and returns them in migration order with a function closing them.
func openRelational(ctx context.Context, cfg migratePostgresConfig, log *slog.Logger) ([]relationalDatabase, func(), error) {
	urls := cfg.urls()
	byURL := map[string]*database.DB{}
	closeAll := func() {
		for _, db := range byURL {
			_ = db.Close()
		}
	}
	var out []relationalDatabase
	for _, service := range relationalServices {
		url, ok := urls[service]
		if !ok {
			continue
		}
		db := byURL[url]
		if db == nil {
			var err error
			if db, err = database.Open(ctx, database.Config{URL: url, MaxOpenConns: 2}, log); err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("%s: %w", service, err)
			}
			byURL[url] = db
		}
		out = append(out, relationalDatabase{service: service, db: db})
	}
	return out, closeAll, nil
}

func migratePostgres(ctx context.Context, cfg migratePostgresConfig, sets map[string][]database.MigrationSet, stdout io.Writer, log *slog.Logger) error {
	dbs, closeAll, err := openRelational(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeAll()
	for _, d := range dbs {
		if len(sets[d.service]) == 0 {
			fmt.Fprintf(stdout, "%s: no migration sets\n", d.service)
			continue
		}
		for _, set := range sets[d.service] {
			applied, err := database.Migrate(ctx, d.db, set)
			if err != nil {
				return fmt.Errorf("%s/%s: %w", d.service, set.Name, err)
			}
			st, err := database.Status(ctx, d.db, set)
			if err != nil {
				return fmt.Errorf("%s/%s: %w", d.service, set.Name, err)
			}
			fmt.Fprintf(stdout, "%s/%s: applied %d (now at %d)\n", d.service, set.Name, applied, st.Current)
		}
	}
	return nil
}

func openCassandra(ctx context.Context, cfg migrateCassandraConfig, log *slog.Logger) (*gocql.Session, error) {
	return cassandra.Open(ctx, cassandra.Config{Hosts: cfg.Hosts, Username: cfg.Username, Password: cfg.Password, LocalDC: cfg.LocalDC}, log)
}

func migrateCassandra(ctx context.Context, cfg migrateCassandraConfig, sets map[string]cassandra.MigrationSet, stdout io.Writer, log *slog.Logger) error {
	replication, err := cfg.replication()
	if err != nil {
		return err
	}
	if len(sets) == 0 {
		fmt.Fprintln(stdout, "cassandra: no migration sets")
		return nil
	}
	session, err := openCassandra(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer session.Close()
	opts := cassandra.MigrateOptions{Replication: replication, LockTimeout: cfg.LockTimeout, Log: log}
	for _, service := range slices.Sorted(maps.Keys(sets)) {
		set := sets[service]
		applied, err := cassandra.Migrate(ctx, session, set, cfg.Keyspace, opts)
		if err != nil {
			return fmt.Errorf("%s/%s: %w", service, set.Name, err)
		}
		st, err := cassandra.Status(ctx, session, set, cfg.Keyspace)
		if err != nil {
			return fmt.Errorf("%s/%s: %w", service, set.Name, err)
		}
		fmt.Fprintf(stdout, "%s/%s: applied %d (now at %d)\n", service, set.Name, applied, st.Current)
	}
	return nil
}

// migrateStatus prints one line per set of every given database and fails if any set is
// behind or its history contradicts its files.
func migrateStatus(ctx context.Context, cfg migrateConfig, sets migrationSets, stdout io.Writer, log *slog.Logger) error {
	var behind []string
	report := func(name string, current, latest int, pending []string, err error) {
		switch {
		case err != nil:
			fmt.Fprintf(stdout, "%s: at %d of %d: %v\n", name, current, latest, err)
			behind = append(behind, name)
		case len(pending) > 0:
			fmt.Fprintf(stdout, "%s: at %d of %d, pending %s\n", name, current, latest, strings.Join(pending, ", "))
			behind = append(behind, name)
		default:
			fmt.Fprintf(stdout, "%s: at %d of %d\n", name, current, latest)
		}
	}

	if len(cfg.Postgres.urls()) > 0 {
		dbs, closeAll, err := openRelational(ctx, cfg.Postgres, log)
		if err != nil {
			return err
		}
		defer closeAll()
		for _, d := range dbs {
			for _, set := range sets.relational[d.service] {
				st, err := database.Status(ctx, d.db, set)
				report(d.service+"/"+set.Name, st.Current, st.Latest, st.Pending, err)
			}
		}
	}
	if len(cfg.Cassandra.Hosts) > 0 && len(sets.cassandra) > 0 {
		session, err := openCassandra(ctx, cfg.Cassandra, log)
		if err != nil {
			return err
		}
		defer session.Close()
		for _, service := range slices.Sorted(maps.Keys(sets.cassandra)) {
			set := sets.cassandra[service]
			st, err := cassandra.Status(ctx, session, set, cfg.Cassandra.Keyspace)
			report(service+"/"+set.Name, st.Current, st.Latest, st.Pending, err)
		}
	}
	if len(behind) > 0 {
		return fmt.Errorf("migrate status: not up to date: %s (run piazza migrate postgres / cassandra)", strings.Join(behind, ", "))
	}
	return nil
}
