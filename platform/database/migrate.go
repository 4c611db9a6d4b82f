package database

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// MigrationSet is one versioned schema history, typically embedded in the service that owns it:
//
//	//go:embed migrations/*.sql
//	var migrationFiles embed.FS
//	var Migrations = database.MigrationSet{Name: "user", FS: migrationFiles, Dir: "migrations"}
//
// Files are named NNNN_description.sql (NNNN: the version, a positive integer; leading zeros
// are conventional), applied in version order. Where a step needs different SQL per engine it
// is given as NNNN_description.postgres.sql and/or NNNN_description.sqlite.sql instead of or
// beside the generic file; the engine's variant wins over the generic one. Other files are
// ignored. Each file runs in one transaction, so it must not hold statements that cannot run in
// one (CREATE INDEX CONCURRENTLY, VACUUM).
//
// Several sets share a database: each is recorded under its Name in schema_migrations.
type MigrationSet struct {
	// Name identifies the set in schema_migrations, e.g. "user" or "dedupe".
	Name string
	// FS holds the migration files.
	FS fs.FS
	// Dir is the directory of FS holding the files; empty means the root.
	Dir string
}

// AppliedMigration is one row of schema_migrations.
type AppliedMigration struct {
	Version   int
	Name      string // the file that was applied
	Checksum  string // hex SHA-256 of its content
	AppliedAt time.Time
}

// MigrationStatus describes how far a database is along a set.
type MigrationStatus struct {
	Set string
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

// Errors a migration can fail with; they arrive wrapped in a *MigrationError when a file is at
// fault.
var (
	// ErrChecksumMismatch: a file recorded as applied has different content now. Applied
	// migrations are immutable; add a new one instead.
	ErrChecksumMismatch = errors.New("content differs from the applied version (applied migrations must not be edited; add a new one)")
	// ErrUnknownVersion: the database records a version the set has no file for, e.g. a newer
	// binary migrated it.
	ErrUnknownVersion = errors.New("version is recorded as applied but the set has no file for it")
	// ErrOutOfOrder: a file is pending although a later version is already applied.
	ErrOutOfOrder = errors.New("pending although a later version is already applied")
)

// MigrationError tells which set and file a migration failure is about.
type MigrationError struct {
	Set  string
	File string
	Err  error
}

func (e *MigrationError) Error() string {
	return fmt.Sprintf("database: migration set %q, file %s: %v", e.Set, e.File, e.Err)
}

func (e *MigrationError) Unwrap() error { return e.Err }

// migrationLockKey is the PostgreSQL advisory lock ("piazzamg" in ASCII) that serializes
// migrators of one database.
const migrationLockKey int64 = 0x7069617a7a616d67

// Migrate applies the pending steps of set in version order and returns how many it applied.
// Each step runs in its own transaction together with its schema_migrations row, so a failing
// step leaves no trace (earlier steps stay applied) and is reported as a *MigrationError naming
// the file. Concurrent migrators, in this process or others, apply each step exactly once:
// each step is decided and applied under the database's migration lock (an advisory
// transaction lock on PostgreSQL, the write lock of BEGIN IMMEDIATE on SQLite). Before applying
// anything Migrate checks the recorded history against the files (ErrChecksumMismatch,
// ErrUnknownVersion, ErrOutOfOrder).
func Migrate(ctx context.Context, db *DB, set MigrationSet) (applied int, err error) {
	ctx, span := db.tracer.Start(ctx, "database.Migrate", trace.WithAttributes(
		attribute.String("db.system", string(db.dialect)), attribute.String("migration.set", set.Name)))
	defer func() {
		span.SetAttributes(attribute.Int("migration.applied", applied))
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()

	steps, err := loadMigrations(set, db.dialect)
	if err != nil {
		return 0, err
	}
	if err := ensureMigrationsTable(ctx, db); err != nil {
		return 0, err
	}
	recorded, err := readApplied(ctx, db.sql, set.Name)
	if err != nil {
		return 0, err
	}
	if err := checkHistory(set.Name, steps, recorded); err != nil {
		return 0, err
	}
	for _, m := range steps {
		if _, done := recorded[m.version]; done {
			continue
		}
		did, err := applyStep(ctx, db, set.Name, m)
		if err != nil {
			return applied, err
		}
		if did {
			applied++
			db.log.InfoContext(ctx, "migration applied", "set", set.Name, "file", m.file, "version", m.version)
		}
	}
	return applied, nil
}

// Status reports how far db is along set without changing anything. If the recorded history
// contradicts the files (see Migrate), it returns the status together with the error.
func Status(ctx context.Context, db *DB, set MigrationSet) (MigrationStatus, error) {
	st := MigrationStatus{Set: set.Name}
	steps, err := loadMigrations(set, db.dialect)
	if err != nil {
		return st, err
	}
	if n := len(steps); n > 0 {
		st.Latest = steps[n-1].version
	}
	exists, err := migrationsTableExists(ctx, db)
	if err != nil {
		return st, err
	}
	recorded := map[int]AppliedMigration{}
	if exists {
		if recorded, err = readApplied(ctx, db.sql, set.Name); err != nil {
			return st, err
		}
	}
	for _, a := range recorded {
		st.Applied = append(st.Applied, a)
		st.Current = max(st.Current, a.Version)
	}
	sort.Slice(st.Applied, func(i, j int) bool { return st.Applied[i].Version < st.Applied[j].Version })
	for _, m := range steps {
		if _, done := recorded[m.version]; !done {
			st.Pending = append(st.Pending, m.file)
		}
	}
	return st, checkHistory(set.Name, steps, recorded)
}

type migration struct {
	version  int
	file     string
	sql      string
	checksum string
}

var migrationFileRE = regexp.MustCompile(`^([0-9]+)_([A-Za-z0-9_-]+?)(?:\.(postgres|sqlite))?\.sql$`)

// loadMigrations reads set's files and picks, per version, the one for dialect d.
func loadMigrations(set MigrationSet, d Dialect) ([]migration, error) {
	if set.Name == "" {
		return nil, errors.New("database: migration set has no name")
	}
	if set.FS == nil {
		return nil, fmt.Errorf("database: migration set %q has no FS", set.Name)
	}
	dir := set.Dir
	if dir == "" {
		dir = "."
	}
	entries, err := fs.ReadDir(set.FS, dir)
	if err != nil {
		return nil, fmt.Errorf("database: migration set %q: read %s: %w", set.Name, dir, err)
	}
	type candidates struct {
		desc     string
		generic  string
		variants map[Dialect]string
	}
	byVersion := map[int]*candidates{}
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
			return nil, fmt.Errorf("database: migration set %q: file %s: version must be a positive integer", set.Name, e.Name())
		}
		c := byVersion[v]
		if c == nil {
			c = &candidates{desc: parts[2], variants: map[Dialect]string{}}
			byVersion[v] = c
		}
		if c.desc != parts[2] {
			return nil, fmt.Errorf("database: migration set %q: version %d has files with different names (%s vs %s)", set.Name, v, c.desc, parts[2])
		}
		switch variant := Dialect(parts[3]); variant {
		case "":
			if c.generic != "" {
				return nil, fmt.Errorf("database: migration set %q: version %d appears twice (%s, %s)", set.Name, v, c.generic, e.Name())
			}
			c.generic = e.Name()
		default:
			c.variants[variant] = e.Name()
		}
	}
	steps := make([]migration, 0, len(byVersion))
	for v, c := range byVersion {
		file := c.variants[d]
		if file == "" {
			file = c.generic
		}
		if file == "" {
			return nil, fmt.Errorf("database: migration set %q: version %d has no file for %s (add a generic .sql or a .%s.sql variant)", set.Name, v, d, d)
		}
		body, err := fs.ReadFile(set.FS, path.Join(dir, file))
		if err != nil {
			return nil, fmt.Errorf("database: migration set %q: read %s: %w", set.Name, file, err)
		}
		sum := sha256.Sum256(body)
		steps = append(steps, migration{version: v, file: file, sql: string(body), checksum: hex.EncodeToString(sum[:])})
	}
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
	versions := make([]int, 0, len(recorded))
	for v := range recorded {
		versions = append(versions, v)
	}
	sort.Ints(versions)
	for _, v := range versions {
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

// lockMigrations takes the migration lock for the rest of tx. On SQLite the write transaction
// itself (BEGIN IMMEDIATE) is the lock.
func lockMigrations(ctx context.Context, db *DB, tx *sql.Tx) error {
	if db.dialect != Postgres {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLockKey); err != nil {
		return fmt.Errorf("database: take migration lock: %w", err)
	}
	return nil
}

func ensureMigrationsTable(ctx context.Context, db *DB) error {
	// Under the lock: concurrent CREATE TABLE IF NOT EXISTS can fail on PostgreSQL.
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		if err := lockMigrations(ctx, db, tx); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			set_name   TEXT        NOT NULL,
			version    BIGINT      NOT NULL,
			name       TEXT        NOT NULL,
			checksum   TEXT        NOT NULL,
			applied_at TIMESTAMPTZ NOT NULL,
			PRIMARY KEY (set_name, version)
		)`)
		return err
	})
	if err != nil {
		return fmt.Errorf("database: create schema_migrations: %w", err)
	}
	return nil
}

func migrationsTableExists(ctx context.Context, db *DB) (bool, error) {
	q := `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`
	if db.dialect == Postgres {
		q = `SELECT count(*) FROM pg_catalog.pg_tables WHERE tablename = 'schema_migrations' AND schemaname = ANY (current_schemas(false))`
	}
	var n int
	if err := db.sql.QueryRowContext(ctx, q).Scan(&n); err != nil {
		return false, fmt.Errorf("database: look for schema_migrations: %w", err)
	}
	return n > 0, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func readApplied(ctx context.Context, q querier, set string) (map[int]AppliedMigration, error) {
	rows, err := q.QueryContext(ctx,
		`SELECT version, name, checksum, applied_at FROM schema_migrations WHERE set_name = $1`, set)
	if err != nil {
		return nil, fmt.Errorf("database: read schema_migrations: %w", err)
	}
	defer rows.Close()
	out := map[int]AppliedMigration{}
	for rows.Next() {
		var a AppliedMigration
		if err := rows.Scan(&a.Version, &a.Name, &a.Checksum, &a.AppliedAt); err != nil {
			return nil, fmt.Errorf("database: read schema_migrations: %w", err)
		}
		out[a.Version] = a
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("database: read schema_migrations: %w", err)
	}
	return out, nil
}

// applyStep applies m unless another migrator has done so since we looked; it reports whether
// it applied it.
func applyStep(ctx context.Context, db *DB, set string, m migration) (applied bool, err error) {
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		if err := lockMigrations(ctx, db, tx); err != nil {
			return err
		}
		var checksum string
		err := tx.QueryRowContext(ctx,
			`SELECT checksum FROM schema_migrations WHERE set_name = $1 AND version = $2`, set, m.version).Scan(&checksum)
		switch {
		case err == nil:
			if checksum != m.checksum {
				return &MigrationError{Set: set, File: m.file, Err: ErrChecksumMismatch}
			}
			return nil // applied meanwhile by another migrator
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("database: read schema_migrations: %w", err)
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return &MigrationError{Set: set, File: m.file, Err: err}
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO schema_migrations (set_name, version, name, checksum, applied_at) VALUES ($1, $2, $3, $4, $5)`,
			set, m.version, m.file, m.checksum, time.Now()); err != nil {
			return fmt.Errorf("database: record migration %s: %w", m.file, err)
		}
		applied = true
		return nil
	})
	if err != nil {
		var me *MigrationError
		if !errors.As(err, &me) {
			err = &MigrationError{Set: set, File: m.file, Err: err}
		}
		return false, err
	}
	return applied, nil
}
