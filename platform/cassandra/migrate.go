package cassandra

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// MigrationSet is one versioned schema history, typically embedded in the service that owns it:
//
//	//go:embed migrations/*.cql
//	var migrationFiles embed.FS
//	var Migrations = cassandra.MigrationSet{Name: "messaging", FS: migrationFiles, Dir: "migrations"}
//
// Files are named NNNN_description.cql (NNNN: the version, a positive integer; leading zeros
// are conventional) and applied in version order; other files are ignored. A file holds one or
// more CQL statements, each ended by a semicolon (conventionally at the end of its line), with
// -- // and /* */ comments allowed. Statements name their tables without a keyspace
// ("CREATE TABLE messages ..."): Migrate runs them in the keyspace it is given, so one set can
// be applied to any keyspace (each test uses a fresh one). This uses the per-request keyspace of
// native protocol v5, so the cluster must run Cassandra 4.0 or later.
//
// Cassandra schema changes are not transactional: when statement 3 of a file fails, statements
// 1 and 2 stay applied while the file's version stays unrecorded, and the next run starts the
// file again from statement 1. Write statements so that running them twice is harmless
// (CREATE ... IF NOT EXISTS, DROP ... IF EXISTS, ALTER guarded by a new file).
//
// Several sets share a keyspace: each is recorded under its Name in schema_migrations.
type MigrationSet struct {
	// Name identifies the set in schema_migrations, e.g. "messaging".
	Name string
	// FS holds the migration files.
	FS fs.FS
	// Dir is the directory of FS holding the files; empty means the root.
	Dir string
}

// Replication is the replication of a keyspace that Migrate creates. It is not applied to a
// keyspace that exists already (changing replication needs a repair and is an operator's
// decision).
type Replication struct {
	// Factor is the replication factor of SimpleStrategy, used when DataCenters is empty.
	// Default 1 (one node: development and tests); production clusters want 3.
	Factor int
	// DataCenters, when not empty, selects NetworkTopologyStrategy with a replication factor
	// per data centre, e.g. {"dc1": 3, "dc2": 3}.
	DataCenters map[string]int
}

// cql returns the replication map of a CREATE KEYSPACE statement.
func (r Replication) cql() (string, error) {
	if len(r.DataCenters) == 0 {
		f := r.Factor
		if f == 0 {
			f = 1
		}
		if f < 0 {
			return "", fmt.Errorf("cassandra: replication factor %d must be positive", f)
		}
		return fmt.Sprintf("{'class': 'SimpleStrategy', 'replication_factor': %d}", f), nil
	}
	var b strings.Builder
	b.WriteString("{'class': 'NetworkTopologyStrategy'")
	for _, dc := range slices.Sorted(maps.Keys(r.DataCenters)) {
		f := r.DataCenters[dc]
		if dc == "" || f <= 0 {
			return "", fmt.Errorf("cassandra: data centre %q: replication factor %d must be positive and the name not empty", dc, f)
		}
		fmt.Fprintf(&b, ", '%s': %d", strings.ReplaceAll(dc, "'", "''"), f)
	}
	b.WriteString("}")
	return b.String(), nil
}

// MigrateOptions tunes Migrate. The zero value is ready to use.
type MigrateOptions struct {
	// Replication of the keyspace if Migrate has to create it. Default SimpleStrategy, factor 1.
	Replication Replication
	// LockTTL is how long the migration lock outlives its holder: a migrator that crashed
	// holding it blocks the others at most this long. The holder renews it about every LockTTL/3,
	// so a long step does not lose it. Default 1 minute; at least 2 seconds (Cassandra expires
	// rows at whole seconds).
	LockTTL time.Duration
	// LockTimeout is how long Migrate waits for another migrator's lock before failing with
	// ErrLockTimeout. Default 5 minutes.
	LockTimeout time.Duration
	// Owner names this migrator in the lock row, which a waiting migrator logs. Default the
	// host name and a random suffix. Two migrators must never share an owner.
	Owner string
	// Log receives a line per applied file and per wait for the lock. Nil: no logging.
	Log *slog.Logger
	// TracerProvider makes the span of Migrate. Nil: otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
}

func (o *MigrateOptions) fillDefaults() error {
	if o.LockTTL == 0 {
		o.LockTTL = time.Minute
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = 5 * time.Minute
	}
	if o.LockTTL < 2*time.Second || o.LockTimeout < 0 {
		return errors.New("cassandra: LockTTL must be at least two seconds and LockTimeout not negative")
	}
	if o.Owner == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "migrator"
		}
		o.Owner = host + "/" + uuid.NewString()[:8]
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.TracerProvider == nil {
		o.TracerProvider = otel.GetTracerProvider()
	}
	return nil
}

// AppliedMigration is one row of schema_migrations.
type AppliedMigration struct {
	Version   int
	Name      string // the file that was applied
	Checksum  string // hex SHA-256 of its content
	AppliedAt time.Time
}

// MigrationStatus describes how far a keyspace is along a set.
type MigrationStatus struct {
	Set      string
	Keyspace string
	// Current is the highest applied version, 0 when none is.
	Current int
	// Latest is the highest version the set has, 0 when it is empty.
	Latest int
	// Applied lists the recorded steps in version order.
	Applied []AppliedMigration
	// Pending lists the files not applied yet, in the order Migrate would apply them.
	Pending []string
}

// UpToDate reports whether nothing is pending.
func (s MigrationStatus) UpToDate() bool { return len(s.Pending) == 0 }

// Errors a migration can fail with; the first three arrive wrapped in a *MigrationError naming
// the file.
var (
	// ErrChecksumMismatch: a file recorded as applied has different content now. Applied
	// migrations are immutable; add a new one instead.
	ErrChecksumMismatch = errors.New("content differs from the applied version (applied migrations must not be edited; add a new one)")
	// ErrUnknownVersion: the keyspace records a version the set has no file for, e.g. a newer
	// binary migrated it.
	ErrUnknownVersion = errors.New("version is recorded as applied but the set has no file for it")
	// ErrOutOfOrder: a file is pending although a later version is already applied.
	ErrOutOfOrder = errors.New("pending although a later version is already applied")
	// ErrLockTimeout: another migrator held the migration lock for longer than LockTimeout.
	ErrLockTimeout = errors.New("cassandra: timed out waiting for the migration lock")
	// ErrLockLost: the lock could not be renewed (it expired or another migrator took it), so
	// Migrate stopped instead of racing the new holder.
	ErrLockLost = errors.New("cassandra: migration lock lost")
)

// MigrationError tells which set, file and statement a migration failure is about.
type MigrationError struct {
	Set  string
	File string
	// Statement is the 1-based number of the failing statement in File, 0 when the failure is
	// about the file as a whole.
	Statement int
	Err       error
}

func (e *MigrationError) Error() string {
	if e.Statement > 0 {
		return fmt.Sprintf("cassandra: migration set %q, file %s, statement %d: %v", e.Set, e.File, e.Statement, e.Err)
	}
	return fmt.Sprintf("cassandra: migration set %q, file %s: %v", e.Set, e.File, e.Err)
}

func (e *MigrationError) Unwrap() error { return e.Err }

// Names of the bookkeeping tables in the migrated keyspace.
const (
	migrationsTable = "schema_migrations"
	lockTable       = "schema_migrations_lock"
	// lockName is the key of the lock row. One lock per keyspace, not per set: schema changes
	// to one keyspace from two migrators at once risk disagreement whichever sets they belong to.
	lockName = "migrate"
)

// Migrate applies the pending steps of set to keyspace, in version order, and returns how many
// it applied. It creates the keyspace (with opts.Replication) and its bookkeeping tables when
// missing. Running it again applies nothing.
//
// Concurrent migrators, in this process or others, apply each step exactly once: steps are
// applied under the keyspace's migration lock — a row taken with a lightweight transaction
// (INSERT ... IF NOT EXISTS) with a TTL, renewed while held, so a crashed holder frees it
// within opts.LockTTL — and the history is re-read once the lock is held. A migrator finding
// the lock taken polls with backoff for up to opts.LockTimeout (ErrLockTimeout). After every statement Migrate waits for the cluster to agree
// on the schema, so the next statement (and the services started after the migration) see it
// on every node.
//
// A step whose statement fails is reported as a *MigrationError naming the file and the
// statement, and its version is not recorded; earlier steps stay recorded and later ones are
// not attempted (see MigrationSet about the statements that did run). Before applying anything
// Migrate checks the recorded history against the files (ErrChecksumMismatch,
// ErrUnknownVersion, ErrOutOfOrder).
func Migrate(ctx context.Context, session *gocql.Session, set MigrationSet, keyspace string, opts MigrateOptions) (applied int, err error) {
	if err := opts.fillDefaults(); err != nil {
		return 0, err
	}
	ctx, span := opts.TracerProvider.Tracer("github.com/piazza-social/piazza/platform/cassandra").Start(ctx, "cassandra.Migrate",
		trace.WithAttributes(attribute.String("db.system.name", "cassandra"), attribute.String("db.namespace", keyspace),
			attribute.String("migration.set", set.Name)))
	defer func() {
		span.SetAttributes(attribute.Int("migration.applied", applied))
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()

	if !validIdentifier(keyspace) {
		return 0, fmt.Errorf("cassandra: keyspace %q is not a valid unquoted name", keyspace)
	}
	steps, err := loadMigrations(set)
	if err != nil {
		return 0, err
	}
	replication, err := opts.Replication.cql()
	if err != nil {
		return 0, err
	}
	m := &migrator{session: session, keyspace: keyspace, set: set.Name, log: opts.Log}
	if err := m.bootstrap(ctx, replication); err != nil {
		return 0, err
	}

	// Fast path: when everything is recorded there is nothing to lock for. Recorded rows are
	// only ever added, so "nothing pending" cannot become false behind our back.
	recorded, err := m.readApplied(ctx)
	if err != nil {
		return 0, err
	}
	if err := checkHistory(set.Name, steps, recorded); err != nil {
		return 0, err
	}
	if len(pending(steps, recorded)) == 0 {
		return 0, nil
	}

	l := &lock{session: session, keyspace: keyspace, owner: opts.Owner, ttl: opts.LockTTL,
		consistency: m.writeConsistency, log: opts.Log}
	held, err := l.acquire(ctx, opts.LockTimeout)
	if err != nil {
		return 0, err
	}
	defer held.release(ctx)
	ctx = held.ctx // cancelled if the lock is lost

	// Under the lock: another migrator may have applied steps while we waited.
	if recorded, err = m.readApplied(ctx); err != nil {
		return 0, held.explain(err)
	}
	if err := checkHistory(set.Name, steps, recorded); err != nil {
		return 0, err
	}
	for _, step := range pending(steps, recorded) {
		if err := m.apply(ctx, step); err != nil {
			return applied, held.explain(err)
		}
		applied++
		opts.Log.InfoContext(ctx, "cassandra migration applied", "keyspace", keyspace, "set", set.Name,
			"file", step.file, "version", step.version, "statements", len(step.statements))
	}
	return applied, nil
}

// Status reports how far keyspace is along set without changing anything; a keyspace or
// bookkeeping table that does not exist yet means nothing is applied. If the recorded history
// contradicts the files (see Migrate), it returns the status together with the error.
//
// A service depending on the schema calls it at start (and from its readiness check) and stays
// not ready until Current reaches Latest, saying which version it needs.
func Status(ctx context.Context, session *gocql.Session, set MigrationSet, keyspace string) (MigrationStatus, error) {
	st := MigrationStatus{Set: set.Name, Keyspace: keyspace}
	if !validIdentifier(keyspace) {
		return st, fmt.Errorf("cassandra: keyspace %q is not a valid unquoted name", keyspace)
	}
	steps, err := loadMigrations(set)
	if err != nil {
		return st, err
	}
	if n := len(steps); n > 0 {
		st.Latest = steps[n-1].version
	}
	m := &migrator{session: session, keyspace: keyspace, set: set.Name}
	exists, err := m.tableExists(ctx, migrationsTable)
	if err != nil {
		return st, err
	}
	recorded := map[int]AppliedMigration{}
	if exists {
		if recorded, err = m.readApplied(ctx); err != nil {
			return st, err
		}
	}
	for _, a := range recorded {
		st.Applied = append(st.Applied, a)
		st.Current = max(st.Current, a.Version)
	}
	sort.Slice(st.Applied, func(i, j int) bool { return st.Applied[i].Version < st.Applied[j].Version })
	for _, s := range pending(steps, recorded) {
		st.Pending = append(st.Pending, s.file)
	}
	return st, checkHistory(set.Name, steps, recorded)
}

type migration struct {
	version    int
	file       string
	checksum   string
	statements []string
}

var migrationFileRE = regexp.MustCompile(`^([0-9]+)_([A-Za-z0-9_-]+)\.cql$`)

// loadMigrations reads and parses set's files, in version order. A file that cannot be parsed
// fails the whole set before anything is applied.
func loadMigrations(set MigrationSet) ([]migration, error) {
	if set.Name == "" {
		return nil, errors.New("cassandra: migration set has no name")
	}
	if set.FS == nil {
		return nil, fmt.Errorf("cassandra: migration set %q has no FS", set.Name)
	}
	dir := set.Dir
	if dir == "" {
		dir = "."
	}
	entries, err := fs.ReadDir(set.FS, dir)
	if err != nil {
		return nil, fmt.Errorf("cassandra: migration set %q: read %s: %w", set.Name, dir, err)
	}
	byVersion := map[int]migration{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		parts := migrationFileRE.FindStringSubmatch(e.Name())
		if parts == nil {
			continue
		}
		v, err := strconv.Atoi(parts[1])
		if err != nil || v <= 0 {
			return nil, &MigrationError{Set: set.Name, File: e.Name(), Err: errors.New("version must be a positive integer")}
		}
		if other, dup := byVersion[v]; dup {
			return nil, fmt.Errorf("cassandra: migration set %q: version %d appears twice (%s, %s)", set.Name, v, other.file, e.Name())
		}
		body, err := fs.ReadFile(set.FS, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("cassandra: migration set %q: read %s: %w", set.Name, e.Name(), err)
		}
		statements, err := splitStatements(string(body))
		if err != nil {
			return nil, &MigrationError{Set: set.Name, File: e.Name(), Err: err}
		}
		if len(statements) == 0 {
			return nil, &MigrationError{Set: set.Name, File: e.Name(), Err: errors.New("holds no statement")}
		}
		sum := sha256.Sum256(body)
		byVersion[v] = migration{version: v, file: e.Name(), checksum: hex.EncodeToString(sum[:]), statements: statements}
	}
	steps := slices.Collect(maps.Values(byVersion))
	sort.Slice(steps, func(i, j int) bool { return steps[i].version < steps[j].version })
	return steps, nil
}

// checkHistory compares the recorded steps with the files.
func checkHistory(set string, steps []migration, recorded map[int]AppliedMigration) error {
	byVersion := make(map[int]migration, len(steps))
	for _, m := range steps {
		byVersion[m.version] = m
	}
	highest := 0
	for _, v := range slices.Sorted(maps.Keys(recorded)) {
		a := recorded[v]
		highest = max(highest, v)
		m, ok := byVersion[v]
		if !ok {
			return &MigrationError{Set: set, File: a.Name, Err: fmt.Errorf("version %d: %w", v, ErrUnknownVersion)}
		}
		if m.checksum != a.Checksum {
			return &MigrationError{Set: set, File: m.file, Err: ErrChecksumMismatch}
		}
	}
	for _, m := range steps {
		if _, done := recorded[m.version]; !done && m.version < highest {
			return &MigrationError{Set: set, File: m.file, Err: fmt.Errorf("%w (version %d)", ErrOutOfOrder, highest)}
		}
	}
	return nil
}

func pending(steps []migration, recorded map[int]AppliedMigration) []migration {
	var out []migration
	for _, m := range steps {
		if _, done := recorded[m.version]; !done {
			out = append(out, m)
		}
	}
	return out
}

// migrator runs the statements of one Migrate or Status call.
type migrator struct {
	session  *gocql.Session
	keyspace string
	set      string
	log      *slog.Logger
	// writeConsistency is used for every write of the bookkeeping tables and of the migration
	// files: EACH_QUORUM under NetworkTopologyStrategy (so a LOCAL_QUORUM read in any data
	// centre sees it), QUORUM otherwise. Set by bootstrap.
	writeConsistency gocql.Consistency
}

// readConsistency reads the bookkeeping tables: with writes at (EACH_)QUORUM a local quorum
// overlaps every completed write, and a remote data centre being down does not fail a
// readiness check.
const readConsistency = gocql.LocalQuorum

// bootstrap creates the keyspace and the bookkeeping tables if missing and picks the write
// consistency from the keyspace's actual replication.
//
// Two migrators may run this at the same moment before any lock can exist. IF NOT EXISTS makes
// the statements themselves safe; the fixed table ids (derived from the keyspace and table
// names) make two nodes that each create the table at once create the same table, instead of
// two tables of one name with different ids, which Cassandra (before transactional metadata)
// reconciles by silently dropping one of them.
func (m *migrator) bootstrap(ctx context.Context, replication string) error {
	ks := m.keyspace
	stmts := []string{
		"CREATE KEYSPACE IF NOT EXISTS " + ks + " WITH replication = " + replication,
		"CREATE TABLE IF NOT EXISTS " + ks + "." + migrationsTable + ` (
			set_name   text,
			version    int,
			name       text,
			checksum   text,
			applied_at timestamp,
			PRIMARY KEY ((set_name), version)
		) WITH ID = ` + tableID(ks, migrationsTable),
		"CREATE TABLE IF NOT EXISTS " + ks + "." + lockTable + ` (
			name        text PRIMARY KEY,
			owner       text,
			acquired_at timestamp
		) WITH ID = ` + tableID(ks, lockTable),
	}
	for _, stmt := range stmts {
		if err := m.session.Query(stmt).ExecContext(ctx); err != nil {
			return fmt.Errorf("cassandra: prepare keyspace %s for migrations: %w", ks, err)
		}
		if err := m.session.AwaitSchemaAgreement(ctx); err != nil {
			return fmt.Errorf("cassandra: prepare keyspace %s for migrations: schema agreement: %w", ks, err)
		}
	}
	var repl map[string]string
	if err := m.session.Query(`SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?`, ks).
		ScanContext(ctx, &repl); err != nil {
		return fmt.Errorf("cassandra: read replication of keyspace %s: %w", ks, err)
	}
	m.writeConsistency = gocql.Quorum
	if strings.HasSuffix(repl["class"], "NetworkTopologyStrategy") {
		m.writeConsistency = gocql.EachQuorum
	}
	return nil
}

// tableID returns the fixed id of a bookkeeping table: a name-based (version 5) UUID.
func tableID(keyspace, table string) string {
	return uuid.NewSHA1(uuid.NameSpaceOID, []byte("piazza/cassandra/"+keyspace+"."+table)).String()
}

func (m *migrator) tableExists(ctx context.Context, table string) (bool, error) {
	var n int
	err := m.session.Query(`SELECT count(*) FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?`,
		m.keyspace, table).ScanContext(ctx, &n)
	if err != nil {
		return false, fmt.Errorf("cassandra: look for %s.%s: %w", m.keyspace, table, err)
	}
	return n > 0, nil
}

func (m *migrator) readApplied(ctx context.Context) (map[int]AppliedMigration, error) {
	iter := m.session.Query(`SELECT version, name, checksum, applied_at FROM `+m.keyspace+`.`+migrationsTable+
		` WHERE set_name = ?`, m.set).Consistency(readConsistency).Idempotent(true).IterContext(ctx)
	out := map[int]AppliedMigration{}
	var a AppliedMigration
	for iter.Scan(&a.Version, &a.Name, &a.Checksum, &a.AppliedAt) {
		a.AppliedAt = a.AppliedAt.UTC()
		out[a.Version] = a
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("cassandra: read %s.%s: %w", m.keyspace, migrationsTable, err)
	}
	return out, nil
}

// apply runs the statements of step in order, waiting for schema agreement after each, then
// records the step. A failing statement leaves the step unrecorded.
func (m *migrator) apply(ctx context.Context, step migration) error {
	for i, stmt := range step.statements {
		err := m.session.Query(stmt).SetKeyspace(m.keyspace).Consistency(m.writeConsistency).ExecContext(ctx)
		if err == nil {
			err = m.session.AwaitSchemaAgreement(ctx)
		}
		if err != nil {
			if i > 0 {
				err = fmt.Errorf("%w (statements 1-%d of this file did run and are not undone: Cassandra schema changes are not "+
					"transactional; the version stays unrecorded, so the fixed file runs again from statement 1)", err, i)
			}
			return &MigrationError{Set: m.set, File: step.file, Statement: i + 1, Err: err}
		}
	}
	err := m.session.Query(`INSERT INTO `+m.keyspace+`.`+migrationsTable+
		` (set_name, version, name, checksum, applied_at) VALUES (?, ?, ?, ?, ?)`,
		m.set, step.version, step.file, step.checksum, time.Now().UTC()).
		Consistency(m.writeConsistency).Idempotent(true).ExecContext(ctx)
	if err != nil {
		return &MigrationError{Set: m.set, File: step.file, Err: fmt.Errorf("applied, but recording it failed: %w", err)}
	}
	return nil
}
