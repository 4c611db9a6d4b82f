package database

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// IsUniqueViolation reports whether err (or an error it wraps) is a violated UNIQUE or PRIMARY
// KEY constraint, on either engine: the "already exists" answer of an INSERT.
func IsUniqueViolation(err error) bool {
	return pgCode(err) == "23505" || sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_UNIQUE ||
		sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// IsForeignKeyViolation reports whether err is a violated FOREIGN KEY constraint: the row
// refers to a missing parent, or a parent still has children.
func IsForeignKeyViolation(err error) bool {
	return pgCode(err) == "23503" || sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// IsNotNullViolation reports whether err is a NULL written to a NOT NULL column.
func IsNotNullViolation(err error) bool {
	return pgCode(err) == "23502" || sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_NOTNULL
}

// IsCheckViolation reports whether err is a violated CHECK constraint.
func IsCheckViolation(err error) bool {
	return pgCode(err) == "23514" || sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_CHECK
}

// IsNoRows reports whether err is ErrNoRows (sql.ErrNoRows).
func IsNoRows(err error) bool { return errors.Is(err, ErrNoRows) }

// IsRetryable reports whether the statement failed only because of concurrency and may succeed
// when the whole transaction is run again: a serialization failure or deadlock on PostgreSQL, a
// database still locked after the busy timeout on SQLite.
func IsRetryable(err error) bool {
	switch pgCode(err) {
	case "40001", "40P01":
		return true
	}
	if errors.Is(err, ErrWriteLockTimeout) {
		return true
	}
	return sqliteCode(err)&0xff == sqlite3.SQLITE_BUSY
}

func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func sqliteCode(err error) int {
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		return sqErr.Code()
	}
	return 0
}
