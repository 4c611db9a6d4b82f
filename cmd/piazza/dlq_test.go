package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/piazza-social/piazza/platform/database/databasetest"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/events/sqlbus"
	"github.com/piazza-social/piazza/services/deadletter"
	"github.com/piazza-social/piazza/services/deadletter/app"
	"github.com/piazza-social/piazza/services/deadletter/domain"
)

// dlqFixture is a data directory as `piazza dev` leaves it: an archive holding dead letters
// and the embedded bus.
type dlqFixture struct {
	dir     string
	archive *app.Application
	bus     *sqlbus.Bus
}

func newDLQFixture(t *testing.T) *dlqFixture {
	t.Helper()
	dir := t.TempDir()
	db := databasetest.Open(t, "sqlite:"+filepath.Join(dir, "deadletter.db"))
	if err := deadletter.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	svc, err := deadletter.New(deadletter.Config{}, deadletter.Deps{DB: db}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The command publishes from its own connection, as from another process: this bus sees
	// its messages by polling.
	bus, err := sqlbus.New(t.Context(), sqlbus.Config{Path: filepath.Join(dir, "events.db"), PollInterval: 5 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	return &dlqFixture{dir: dir, archive: svc.App(), bus: bus}
}

// originalMetadata is what the test messages carried before they failed.
var originalMetadata = map[string]string{events.MetadataEventType: "post.created", events.PartitionKey: "author-1"}

// seed archives a dead letter of topic with payload, as the archive consumer would.
func (f *dlqFixture) seed(t *testing.T, topic string, payload []byte) domain.Entry {
	t.Helper()
	return seedEntry(t, f.archive, topic, payload)
}

func seedEntry(t *testing.T, archive *app.Application, topic string, payload []byte) domain.Entry {
	t.Helper()
	md := maps.Clone(originalMetadata)
	md[events.MetadataPoisonTopic] = topic
	md[events.MetadataPoisonHandler] = "notify_followers"
	md[events.MetadataPoisonReason] = "boom:\ndownstream unavailable"
	md[events.MetadataPoisonAttempts] = "5"
	now := time.Now().UTC()
	md[events.MetadataPoisonFirstFailure] = now.Add(-time.Second).Format(time.RFC3339Nano)
	md[events.MetadataPoisonLastFailure] = now.Format(time.RFC3339Nano)
	e, ok, err := archive.Archive(t.Context(), domain.Letter{UUID: uuid.NewString(), Metadata: md, Payload: payload})
	if err != nil || !ok {
		t.Fatalf("seed: %v, %v", ok, err)
	}
	return e
}

// dlq runs `piazza dlq args... --data-dir <dir>` with an empty environment and returns its
// stdout and stderr.
func (f *dlqFixture) dlq(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return runDLQTest(t, nil, append(args, "--data-dir", f.dir)...)
}

func runDLQTest(t *testing.T, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := runDLQ(t.Context(), args, &out, &errOut, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	return out.String(), errOut.String(), err
}

func (f *dlqFixture) mustDLQ(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := f.dlq(t, args...)
	if err != nil {
		t.Fatalf("piazza dlq %s: %v\nstderr:\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// tableIDs returns the first column of the data rows of a list table.
func tableIDs(t *testing.T, out string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if !strings.HasPrefix(lines[0], "ID ") {
		t.Fatalf("no table header in:\n%s", out)
	}
	var ids []string
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, "more: ") {
			continue
		}
		ids = append(ids, strings.Fields(l)[0])
	}
	return ids
}

func TestDLQListPrintsATableNewestFirstFilteredByTopic(t *testing.T) {
	f := newDLQFixture(t)
	a := f.seed(t, "posts", []byte(`{}`))
	b := f.seed(t, "users", []byte(`{}`))
	c := f.seed(t, "posts", []byte(`{}`))

	out := f.mustDLQ(t, "list")
	if got, want := tableIDs(t, out), []string{c.ID, b.ID, a.ID}; !slices.Equal(got, want) {
		t.Fatalf("list rows %v, want %v:\n%s", got, want, out)
	}
	for _, s := range []string{"TOPIC", "HANDLER", "ATTEMPTS", "notify_followers", "boom: downstream unavailable", " no "} {
		if !strings.Contains(out, s) {
			t.Errorf("list output lacks %q:\n%s", s, out)
		}
	}
	if got := tableIDs(t, f.mustDLQ(t, "list", "--topic", "users")); !slices.Equal(got, []string{b.ID}) {
		t.Errorf("list --topic users rows %v, want %v", got, []string{b.ID})
	}
	if out := f.mustDLQ(t, "list", "--topic", "nobody"); out != "no dead letters of topic nobody\n" {
		t.Errorf("list of an empty topic printed %q", out)
	}
}

func TestDLQListPagesWithTheCursorItPrints(t *testing.T) {
	f := newDLQFixture(t)
	a := f.seed(t, "posts", []byte(`{}`))
	b := f.seed(t, "posts", []byte(`{}`))
	first := f.mustDLQ(t, "list", "--limit", "1")
	if got := tableIDs(t, first); !slices.Equal(got, []string{b.ID}) {
		t.Fatalf("first page %v, want %v", got, []string{b.ID})
	}
	want := "more: piazza dlq list --cursor " + b.ID + "\n"
	if !strings.HasSuffix(first, want) {
		t.Fatalf("first page does not end with %q:\n%s", want, first)
	}
	second := f.mustDLQ(t, "list", "--limit", "1", "--cursor", b.ID)
	if got := tableIDs(t, second); !slices.Equal(got, []string{a.ID}) || strings.Contains(second, "more:") {
		t.Fatalf("second page %v, want only %s and no more:\n%s", got, a.ID, second)
	}
}

func TestDLQShowPrintsEveryFieldAndThePayloadReadably(t *testing.T) {
	f := newDLQFixture(t)
	for _, tc := range []struct {
		name    string
		payload []byte
		key     string
		want    any
	}{
		{"json", []byte(`{"id":"e1","payload":{"post_id":"p1"}}`), "payload", map[string]any{"id": "e1", "payload": map[string]any{"post_id": "p1"}}},
		{"text", []byte(`not json`), "payload_text", "not json"},
		{"binary", []byte{0xff, 0x00}, "payload_base64", "/wA="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := f.seed(t, "posts", tc.payload)
			// The id before the flags, as an operator types it.
			out, errOut, err := runDLQTest(t, nil, "show", e.ID, "--data-dir", f.dir)
			if err != nil {
				t.Fatalf("show: %v\n%s", err, errOut)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("show output is not JSON: %v\n%s", err, out)
			}
			for k, want := range map[string]any{
				"id": e.ID, "message_id": e.MessageID, "topic": "posts", "handler": "notify_followers",
				"reason": "boom:\ndownstream unavailable", "attempts": 5.0, "replay_count": 0.0, "replayed_at": nil,
				tc.key: tc.want,
			} {
				if g := got[k]; !jsonEqual(g, want) {
					t.Errorf("%s = %#v, want %#v", k, g, want)
				}
			}
			if got["first_failed_at"] == nil || got["last_failed_at"] == nil || got["archived_at"] == nil {
				t.Errorf("times missing: %s", out)
			}
			if md, _ := got["metadata"].(map[string]any); md[events.MetadataPoisonTopic] != "posts" {
				t.Errorf("metadata %v lacks the failure record", got["metadata"])
			}
		})
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// subscribe starts consuming topic of the fixture's bus as a new group.
func (f *dlqFixture) subscribe(t *testing.T, topic string) <-chan *message.Message {
	t.Helper()
	sub, err := f.bus.Subscriber("watcher-" + uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	ch, err := sub.Subscribe(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func receive(t *testing.T, ch <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case m := <-ch:
		m.Ack()
		return m
	case <-time.After(15 * time.Second):
		t.Fatal("nothing published within 15s")
		return nil
	}
}

func TestDLQReplayPublishesTheOriginalMessageThroughTheEmbeddedBus(t *testing.T) {
	f := newDLQFixture(t)
	e := f.seed(t, "posts", []byte(`{"id":"e1"}`))
	posts := f.subscribe(t, "posts")

	out, errOut, err := f.dlq(t, "replay", e.ID)
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, errOut)
	}
	if want := "replayed " + e.ID + " (message " + e.MessageID + ") to posts; replayed 1 time(s) in all\n"; out != want {
		t.Errorf("replay printed %q, want %q", out, want)
	}
	m := receive(t, posts)
	if m.UUID != e.MessageID || string(m.Payload) != `{"id":"e1"}` {
		t.Errorf("replayed message %s %s, want %s with the original payload", m.UUID, m.Payload, e.MessageID)
	}
	if got := map[string]string(m.Metadata); !maps.Equal(got, originalMetadata) {
		t.Errorf("replayed metadata %v, want the original %v", got, originalMetadata)
	}
	if !strings.Contains(errOut, `"msg":"dead letter replayed"`) || !strings.Contains(errOut, `"entry_id":"`+e.ID+`"`) {
		t.Errorf("the replay is not logged with its entry id; stderr:\n%s", errOut)
	}
	shown, err := f.archive.Show(t.Context(), e.ID)
	if err != nil || shown.ReplayCount != 1 {
		t.Errorf("entry after replay: count %d, %v; want 1", shown.ReplayCount, err)
	}
}

func TestDLQReplayAllReplaysEveryPendingEntryOfTheTopic(t *testing.T) {
	f := newDLQFixture(t)
	p1 := f.seed(t, "posts", []byte(`{}`))
	f.seed(t, "users", []byte(`{}`))
	p2 := f.seed(t, "posts", []byte(`{}`))
	posts := f.subscribe(t, "posts")

	if out := f.mustDLQ(t, "replay", "--all", "--topic", "posts"); out != "replayed 2 dead letters of topic posts\n" {
		t.Fatalf("replay --all printed %q", out)
	}
	if got := []string{receive(t, posts).UUID, receive(t, posts).UUID}; !slices.Equal(got, []string{p1.MessageID, p2.MessageID}) {
		t.Fatalf("replayed %v, want oldest first %v", got, []string{p1.MessageID, p2.MessageID})
	}
	if out := f.mustDLQ(t, "replay", "--all", "--topic", "posts"); out != "replayed 0 dead letters of topic posts\n" {
		t.Fatalf("second replay --all printed %q, want nothing replayed again", out)
	}
	if out := f.mustDLQ(t, "replay", "--all"); out != "replayed 1 dead letters\n" {
		t.Fatalf("replay --all of every topic printed %q, want the users entry", out)
	}
}

func TestDLQPurgeDeletesOneEntryOrEveryOldEnoughEntry(t *testing.T) {
	f := newDLQFixture(t)
	a := f.seed(t, "posts", []byte(`{}`))
	f.seed(t, "posts", []byte(`{}`))
	f.seed(t, "users", []byte(`{}`))

	out, errOut, err := f.dlq(t, "purge", a.ID)
	if err != nil || out != "purged "+a.ID+"\n" {
		t.Fatalf("purge: %q, %v\n%s", out, err, errOut)
	}
	if !strings.Contains(errOut, `"msg":"dead letter purged"`) || !strings.Contains(errOut, a.ID) {
		t.Errorf("the purge is not logged with its entry id; stderr:\n%s", errOut)
	}
	if _, _, err := f.dlq(t, "show", a.ID); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("show of a purged entry: %v, want not found", err)
	}
	if out := f.mustDLQ(t, "purge", "--older-than", "1h"); out != "purged 0 dead letters archived more than 1h0m0s ago\n" {
		t.Fatalf("purge --older-than 1h of fresh entries printed %q", out)
	}
	if out := f.mustDLQ(t, "purge", "--older-than", "0s"); out != "purged 2 dead letters archived more than 0s ago\n" {
		t.Fatalf("purge --older-than 0s printed %q", out)
	}
	if out := f.mustDLQ(t, "list"); out != "no dead letters\n" {
		t.Fatalf("list after purging everything printed %q", out)
	}
}

func TestDLQReadsItsSettingsFromTheEnvironment(t *testing.T) {
	f := newDLQFixture(t)
	e := f.seed(t, "posts", []byte(`{}`))
	out, errOut, err := runDLQTest(t, map[string]string{"PIAZZA_DATA_DIR": f.dir}, "list")
	if err != nil {
		t.Fatalf("list: %v\n%s", err, errOut)
	}
	if got := tableIDs(t, out); !slices.Equal(got, []string{e.ID}) {
		t.Fatalf("list with PIAZZA_DATA_DIR rows %v, want %v", got, []string{e.ID})
	}
}

func TestDLQMistakesFailWithOneLineNamingTheProblem(t *testing.T) {
	f := newDLQFixture(t)
	empty := t.TempDir()
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"unknown command", nil, []string{"peek"}, `unknown dlq command "peek"`},
		{"show without id", nil, []string{"show", "--data-dir", f.dir}, "missing the id"},
		{"show with two ids", nil, []string{"show", "a", "b", "--data-dir", f.dir}, `unexpected argument "b"`},
		{"show of an unknown id", nil, []string{"show", uuid.NewString(), "--data-dir", f.dir}, "dead letter not found"},
		{"replay of an id and --all", nil, []string{"replay", "x", "--all", "--data-dir", f.dir}, "either an id or --all"},
		{"replay --topic without --all", nil, []string{"replay", "x", "--topic", "posts", "--data-dir", f.dir}, "--topic goes with --all"},
		{"purge of an id and --older-than", nil, []string{"purge", "x", "--older-than", "1h", "--data-dir", f.dir}, "either an id or --older-than"},
		{"purge --older-than not a duration", nil, []string{"purge", "--older-than", "a week", "--data-dir", f.dir}, "older-than"},
		{"list --limit out of range", nil, []string{"list", "--limit", "0", "--data-dir", f.dir}, "--limit"},
		{"list with a bad cursor", nil, []string{"list", "--cursor", "page-2", "--data-dir", f.dir}, "invalid cursor"},
		{"no archive in the data dir", nil, []string{"list", "--data-dir", empty}, "PIAZZA_DATA_DIR (--data-dir): no dead-letter archive at"},
		{"kafka without the archive's database", nil, []string{"list", "--kafka-brokers", "localhost:9092"}, "PIAZZA_KAFKA_BROKERS (--kafka-brokers): needs --deadletter-database-url"},
		{"replay from postgres without kafka", nil, []string{"replay", "x", "--deadletter-database-url", "sqlite:" + filepath.Join(f.dir, "deadletter.db")}, "PIAZZA_KAFKA_BROKERS (--kafka-brokers): required to replay"},
		{"bad environment value", map[string]string{"PIAZZA_LOG_LEVEL": "loud"}, []string{"list"}, "PIAZZA_LOG_LEVEL (--log-level)"},
		{"unknown flag", nil, []string{"list", "--colour"}, "colour"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runDLQTest(t, tc.env, tc.args...)
			if err == nil {
				t.Fatalf("piazza dlq %v succeeded", tc.args)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q, want one line containing %q", err, tc.want)
			}
		})
	}
	if files, _ := filepath.Glob(filepath.Join(empty, "*")); len(files) != 0 {
		t.Errorf("a failed command left files in the data dir: %v", files)
	}
}

func TestDLQWithoutCommandPrintsUsage(t *testing.T) {
	_, errOut, err := runDLQTest(t, nil)
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(errOut, "usage: piazza dlq") {
		t.Fatalf("no command: %v, stderr %q; want ErrHelp and the usage", err, errOut)
	}
	out, _, err := runDLQTest(t, nil, "help")
	if err != nil || !strings.Contains(out, "replay <id> | --all") {
		t.Fatalf("help: %v, %q", err, out)
	}
	_, errOut, err = runDLQTest(t, nil, "purge", "-h")
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(errOut, "-older-than") || !strings.Contains(errOut, "PIAZZA_DATA_DIR") {
		t.Fatalf("purge -h: %v, stderr %q; want ErrHelp and the flags with their variables", err, errOut)
	}
}
