package cassandra

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

func TestConfigDefaultsAreLocalQuorumAndBoundedTimeouts(t *testing.T) {
	c := Config{Hosts: []string{"127.0.0.1"}}
	c.fillDefaults()
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	if c.Consistency != gocql.LocalQuorum || c.SerialConsistency != gocql.LocalSerial {
		t.Errorf("consistency = %s/%s, want LOCAL_QUORUM/LOCAL_SERIAL", c.Consistency, c.SerialConsistency)
	}
	if c.ConnectTimeout <= 0 || c.Timeout <= 0 || c.MaxWaitSchemaAgreement <= 0 || c.NumConns <= 0 || c.Retries <= 0 {
		t.Errorf("a default is missing: %+v", c)
	}
	if c.TracerProvider == nil {
		t.Error("TracerProvider not defaulted")
	}
}

func TestConfigKeepsExplicitValues(t *testing.T) {
	c := Config{Hosts: []string{"h"}, Consistency: gocql.One, SerialConsistency: gocql.Serial,
		ConnectTimeout: time.Second, Timeout: 2 * time.Second, NumConns: 4, Retries: -1}
	c.fillDefaults()
	if c.Consistency != gocql.One || c.SerialConsistency != gocql.Serial || c.ConnectTimeout != time.Second ||
		c.Timeout != 2*time.Second || c.NumConns != 4 || c.Retries != -1 {
		t.Errorf("explicit values overwritten: %+v", c)
	}
	if cl := c.cluster(nil); cl.RetryPolicy != nil {
		t.Errorf("Retries -1 still configures a retry policy: %T", cl.RetryPolicy)
	}
}

func TestConfigValidationRejectsBadValues(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no hosts", Config{}, "no hosts"},
		{"only blank hosts", Config{Hosts: []string{" ", ""}}, "no hosts"},
		{"negative timeout", Config{Hosts: []string{"h"}, Timeout: -time.Second}, "negative"},
		{"negative conns", Config{Hosts: []string{"h"}, NumConns: -1}, "NumConns"},
		{"non-serial serial consistency", Config{Hosts: []string{"h"}, SerialConsistency: gocql.Quorum}, "SerialConsistency"},
		{"keyspace needing quotes", Config{Hosts: []string{"h"}, Keyspace: "my-space"}, "keyspace"},
		{"keyspace too long", Config{Hosts: []string{"h"}, Keyspace: strings.Repeat("k", 49)}, "keyspace"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cfg
			c.fillDefaults()
			err := c.validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("validate() = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestValidIdentifier(t *testing.T) {
	for s, want := range map[string]bool{
		"piazza": true, "Piazza_2": true, "a": true, strings.Repeat("a", 48): true,
		"": false, "1abc": false, "_abc": false, "a-b": false, "a b": false, "a;drop": false,
		strings.Repeat("a", 49): false,
	} {
		if got := validIdentifier(s); got != want {
			t.Errorf("validIdentifier(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestOpenWithoutHostsFailsBeforeDialling(t *testing.T) {
	if _, err := Open(context.Background(), Config{}, nil); err == nil {
		t.Fatal("Open with no hosts succeeded")
	}
}

func TestOpenReturnsWhenContextIsCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// 192.0.2.1 (TEST-NET-1) never answers; the cancelled context must win over the dial.
	_, err := Open(ctx, Config{Hosts: []string{"192.0.2.1:9042"}, ConnectTimeout: time.Minute}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Open = %v, want context.Canceled", err)
	}
}

func TestOperationIsTheStatementsFirstKeyword(t *testing.T) {
	for stmt, want := range map[string]string{
		"select * from t":            "SELECT",
		"  INSERT INTO t (a) VALUES": "INSERT",
		"":                           "QUERY",
	} {
		if got := operation(stmt); got != want {
			t.Errorf("operation(%q) = %q, want %q", stmt, got, want)
		}
	}
}
