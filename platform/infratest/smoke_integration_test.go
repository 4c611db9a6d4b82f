//go:build integration

// Smoke tests of the real servers: each proves that the server named by its PIAZZA_TEST_*
// variable is up and usable the way the services use it. When one of these fails, the other
// integration tests fail for a reason that is not theirs.
package infratest_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/piazza-social/piazza/platform/infratest"
)

func uniqueName(t *testing.T, prefix string) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b[:])
}

func timeoutContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestPostgresNewDatabaseIsUsableAndDroppedAfterTheTest(t *testing.T) {
	ctx := timeoutContext(t, time.Minute)
	var dbName string
	// Closed only after the subtest's cleanups: the drop must not depend on the test closing
	// its connections.
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close(context.Background())
		}
	}()

	t.Run("use", func(t *testing.T) {
		dbURL := infratest.NewPostgresDatabase(t)
		u, err := url.Parse(dbURL)
		if err != nil {
			t.Fatal(err)
		}
		dbName = strings.TrimPrefix(u.Path, "/")

		conn, err = pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Fatalf("connecting to the new database: %v", err)
		}

		var current string
		if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&current); err != nil {
			t.Fatal(err)
		}
		if current != dbName {
			t.Fatalf("connected to %q, want %q", current, dbName)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL)"); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "INSERT INTO t VALUES (1, 'piazza')"); err != nil {
			t.Fatal(err)
		}
		var v string
		if err := conn.QueryRow(ctx, "SELECT v FROM t WHERE id = 1").Scan(&v); err != nil || v != "piazza" {
			t.Fatalf("read back %q, %v; want %q", v, err, "piazza")
		}
	})
	if dbName == "" {
		t.Fatal("subtest created no database")
	}

	admin, err := pgx.Connect(ctx, infratest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", dbName).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s still exists after its test's cleanup", dbName)
	}
}

func TestRedisKeysExpireAndPubSubDelivers(t *testing.T) {
	ctx := timeoutContext(t, 30*time.Second)
	client := redis.NewClient(&redis.Options{Addr: infratest.RedisAddr(t)})
	t.Cleanup(func() { _ = client.Close() })

	key := uniqueName(t, "infratest:key:")
	if err := client.Set(ctx, key, "value", time.Minute).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	t.Cleanup(func() { client.Del(context.Background(), key) })
	if got, err := client.Get(ctx, key).Result(); err != nil || got != "value" {
		t.Fatalf("GET = %q, %v; want %q", got, err, "value")
	}
	if ttl, err := client.TTL(ctx, key).Result(); err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("TTL = %v, %v; want in (0, 1m]", ttl, err)
	}

	channel := uniqueName(t, "infratest:channel:")
	sub := client.Subscribe(ctx, channel)
	t.Cleanup(func() { _ = sub.Close() })
	// Publishing before the subscription is confirmed could lose the message.
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatalf("SUBSCRIBE: %v", err)
	}
	if n, err := client.Publish(ctx, channel, "hello").Result(); err != nil || n != 1 {
		t.Fatalf("PUBLISH reached %d subscribers, %v; want 1", n, err)
	}
	msg, err := sub.ReceiveMessage(ctx)
	if err != nil {
		t.Fatalf("receiving: %v", err)
	}
	if msg.Channel != channel || msg.Payload != "hello" {
		t.Fatalf("received %q on %q, want %q on %q", msg.Payload, msg.Channel, "hello", channel)
	}
}

func TestKafkaAutoCreatesTopicsWithSeveralPartitions(t *testing.T) {
	brokers := infratest.KafkaBrokers(t)
	cfg := sarama.NewConfig()
	// Kafka 4 dropped the protocol versions of Sarama's default.
	cfg.Version = sarama.V4_0_0_0
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Retry.Max = 20 // the first send races the topic's creation
	client, err := sarama.NewClient(brokers, cfg)
	if err != nil {
		t.Fatalf("connecting to %v: %v", brokers, err)
	}
	t.Cleanup(func() { _ = client.Close() })
	if len(client.Brokers()) == 0 {
		t.Fatal("metadata lists no broker")
	}
	if _, err := client.Controller(); err != nil {
		t.Fatalf("no controller: %v", err)
	}

	topic := uniqueName(t, "infratest-")
	t.Cleanup(func() {
		admin, err := sarama.NewClusterAdmin(brokers, cfg)
		if err != nil {
			t.Errorf("admin client: %v", err)
			return
		}
		defer admin.Close()
		if err := admin.DeleteTopic(topic); err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			t.Errorf("deleting topic %s: %v", topic, err)
		}
	})

	producer, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = producer.Close() })
	partition, offset, err := producer.SendMessage(&sarama.ProducerMessage{
		Topic: topic, Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder("hello"),
	})
	if err != nil {
		t.Fatalf("producing to a new topic (auto-creation): %v", err)
	}
	partitions, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	// Ordering-by-key tests are only meaningful with several partitions.
	if len(partitions) < 2 {
		t.Fatalf("auto-created topic has %d partition(s), want several (num.partitions)", len(partitions))
	}

	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = consumer.Close() })
	pc, err := consumer.ConsumePartition(topic, partition, offset)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	select {
	case msg := <-pc.Messages():
		if string(msg.Value) != "hello" || string(msg.Key) != "k" {
			t.Fatalf("consumed %q=%q, want %q=%q", msg.Key, msg.Value, "k", "hello")
		}
	case err := <-pc.Errors():
		t.Fatalf("consuming: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the produced message was not consumed within 30s")
	}
}

func TestCassandraAnswersCQLAndStoresRows(t *testing.T) {
	ctx := timeoutContext(t, 2*time.Minute)
	cluster := gocql.NewCluster(infratest.CassandraHosts(t)...)
	cluster.Consistency = gocql.One
	cluster.Timeout = 20 * time.Second // schema changes on a loaded 2-core machine are slow
	cluster.ConnectTimeout = 10 * time.Second
	session, err := cluster.CreateSession()
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	t.Cleanup(session.Close)

	var release string
	if err := session.Query("SELECT release_version FROM system.local").ScanContext(ctx, &release); err != nil {
		t.Fatalf("querying system.local: %v", err)
	}
	if release == "" {
		t.Fatal("empty release_version")
	}
	t.Logf("cassandra %s", release)

	keyspace := uniqueName(t, "infratest_")
	create := "CREATE KEYSPACE " + keyspace +
		" WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
	if err := session.Query(create).ExecContext(ctx); err != nil {
		t.Fatalf("creating keyspace: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := session.Query("DROP KEYSPACE IF EXISTS " + keyspace).ExecContext(ctx); err != nil {
			t.Errorf("dropping keyspace %s: %v", keyspace, err)
		}
	})
	if err := session.Query("CREATE TABLE " + keyspace + ".posts (id text PRIMARY KEY, body text)").ExecContext(ctx); err != nil {
		t.Fatalf("creating table: %v", err)
	}
	if err := session.Query("INSERT INTO "+keyspace+".posts (id, body) VALUES (?, ?)", "p1", "hello").ExecContext(ctx); err != nil {
		t.Fatalf("inserting: %v", err)
	}
	var body string
	if err := session.Query("SELECT body FROM "+keyspace+".posts WHERE id = ?", "p1").ScanContext(ctx, &body); err != nil {
		t.Fatalf("selecting: %v", err)
	}
	if body != "hello" {
		t.Fatalf("read back %q, want %q", body, "hello")
	}
}
