package database

import (
	"context"
	"database/sql/driver"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
)

// postgresConnector returns pgx's connector for rawURL. Every connection scans TIMESTAMPTZ
// values in UTC (pgx's default is time.Local), so a time read back is the same on both engines
// whatever the host's time zone.
func postgresConnector(rawURL string) (driver.Connector, error) {
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("database: parse postgres URL %s: %w", redact(rawURL), err)
	}
	utc := stdlib.OptionAfterConnect(func(_ context.Context, conn *pgx.Conn) error {
		conn.TypeMap().RegisterType(&pgtype.Type{
			Name:  "timestamptz",
			OID:   pgtype.TimestamptzOID,
			Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC},
		})
		return nil
	})
	return stdlib.GetConnector(*cfg, utc), nil
}
