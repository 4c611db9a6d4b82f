package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/piazza-social/piazza/platform/config"
	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/events/kafkabus"
	"github.com/piazza-social/piazza/platform/events/sqlbus"
	"github.com/piazza-social/piazza/platform/logging"
	"github.com/piazza-social/piazza/services/deadletter"
	"github.com/piazza-social/piazza/services/deadletter/app"
	"github.com/piazza-social/piazza/services/deadletter/domain"
)

const dlqUsage = `usage: piazza dlq <command> [flags]

Operate the dead-letter archive: the events that a handler gave up on, copied from the
dead_letters topic by the archive consumer.

commands:
  list [--topic T] [--limit N] [--cursor C]   archived dead letters, newest first
  show <id>                                   one dead letter in full, payload included
  replay <id> | --all [--topic T]             publish the original message again to its topic
  purge <id> | --older-than <duration>        delete from the archive

The embedded default reads <data-dir>/deadletter.db and replays through the embedded bus in
<data-dir>/events.db; with --deadletter-database-url (PostgreSQL) it reads that archive and
replays through --kafka-brokers. Every replay and purge is logged (JSON, on stderr).
Run 'piazza dlq <command> -h' for the flags of a command.
`

// dlqConfig is what every dlq command needs; like the main command's settings, each can be
// given as a flag or as the PIAZZA_* variable named in its help.
type dlqConfig struct {
	DataDir               string     `flag:"data-dir" default:"./data" help:"embedded default: directory of deadletter.db and events.db"`
	DeadLetterDatabaseURL string     `flag:"deadletter-database-url" help:"distributed mode: PostgreSQL URL of the dead-letter archive (postgres://...)"`
	KafkaBrokers          []string   `flag:"kafka-brokers" help:"distributed mode: Kafka bootstrap brokers to replay through, host:port,..."`
	BusNamespace          string     `flag:"bus-namespace" help:"distributed mode: the deployment's topic prefix (as given to piazza serve)"`
	LogLevel              slog.Level `flag:"log-level" default:"info" help:"level of the action log on stderr: debug, info, warn or error"`
}

// dlqSettingError names a setting by its environment variable and flag, like config.Error.
func dlqSettingError(flagName, format string, args ...any) error {
	env := "PIAZZA_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
	return fmt.Errorf("%s (--%s): %s", env, flagName, fmt.Sprintf(format, args...))
}

// dlqAction does a dlq command with its positional arguments.
type dlqAction func(ctx context.Context, e *dlqEnv, pos []string) error

// dlqCommand returns the synopsis of the command name and a function that registers its own
// flags on a flag set and returns its action; ok is false for an unknown command.
func dlqCommand(name string) (synopsis string, flags func(fs *flag.FlagSet) dlqAction, ok bool) {
	switch name {
	case "list":
		return "[--topic T] [--limit N] [--cursor C]", dlqList, true
	case "show":
		return "<id>", dlqShow, true
	case "replay":
		return "<id> | --all [--topic T]", dlqReplay, true
	case "purge":
		return "<id> | --older-than <duration>", dlqPurge, true
	}
	return "", nil, false
}

// runDLQ runs `piazza dlq <command> ...`.
func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, dlqUsage)
		return flag.ErrHelp
	}
	name, args := args[0], args[1:]
	switch name {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, dlqUsage)
		return nil
	}
	synopsis, flags, ok := dlqCommand(name)
	if !ok {
		fmt.Fprint(stderr, dlqUsage)
		return fmt.Errorf("unknown dlq command %q", name)
	}

	var cfg dlqConfig
	fs := flag.NewFlagSet("piazza dlq "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// Defaults and environment only: the arguments are parsed below, where positional ones
	// may come before or after the flags.
	if err := config.Load(fs, &cfg, config.Source{Prefix: "PIAZZA", LookupEnv: lookupEnv}); err != nil {
		return err
	}
	do := flags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintf(stderr, "usage: piazza dlq %s %s [flags]\n\n", name, synopsis)
			fs.PrintDefaults()
		}
		return err
	}
	if cfg.DeadLetterDatabaseURL == "" && len(cfg.KafkaBrokers) > 0 {
		return dlqSettingError("kafka-brokers", "needs --deadletter-database-url: the embedded archive replays through the embedded bus")
	}

	log := logging.New(stderr, logging.Config{Level: cfg.LogLevel}).With(
		slog.String("command", "piazza dlq "+name), slog.String("os_user", osUser()))
	e := &dlqEnv{cfg: cfg, log: log, stdout: stdout}
	defer e.close()
	return do(ctx, e, pos)
}

// parseInterleaved parses args with fs, collecting the positional arguments found between
// flags (the flag package alone stops at the first one).
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func osUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "unknown"
}

// dlqEnv opens what a command needs, on first use, and closes it at the end.
type dlqEnv struct {
	cfg    dlqConfig
	log    *slog.Logger
	stdout io.Writer
	closer []func() error
}

func (e *dlqEnv) close() {
	for i := len(e.closer) - 1; i >= 0; i-- {
		if err := e.closer[i](); err != nil {
			e.log.Warn("closing", "error", err)
		}
	}
}

// service opens the archive and, when replay is set, the bus to replay through.
func (e *dlqEnv) service(ctx context.Context, replay bool) (*app.Application, error) {
	db, err := e.openArchive(ctx)
	if err != nil {
		return nil, err
	}
	var pub message.Publisher
	if replay {
		if pub, err = e.openBus(ctx); err != nil {
			return nil, err
		}
	}
	svc, err := deadletter.New(deadletter.Config{}, deadletter.Deps{DB: db, Publisher: pub}, e.log)
	if err != nil {
		return nil, err
	}
	return svc.App(), nil
}

func (e *dlqEnv) openArchive(ctx context.Context) (*database.DB, error) {
	url, setting := e.cfg.DeadLetterDatabaseURL, "deadletter-database-url"
	if url == "" {
		path := filepath.Join(e.cfg.DataDir, "deadletter.db")
		// Opening would create an empty archive: a mistyped data directory must not look
		// like an archive without dead letters.
		if _, err := os.Stat(path); err != nil {
			return nil, dlqSettingError("data-dir", "no dead-letter archive at %s (has `piazza dev` run with this data directory?)", path)
		}
		url, setting = "sqlite:"+path, "data-dir"
	}
	db, err := database.Open(ctx, database.Config{URL: url}, nil)
	if err != nil {
		return nil, dlqSettingError(setting, "%v", err)
	}
	e.closer = append(e.closer, db.Close)
	if err := deadletter.Migrate(ctx, db); err != nil {
		return nil, err
	}
	return db, nil
}

func (e *dlqEnv) openBus(ctx context.Context) (message.Publisher, error) {
	if e.cfg.DeadLetterDatabaseURL != "" {
		if len(e.cfg.KafkaBrokers) == 0 {
			return nil, dlqSettingError("kafka-brokers", "required to replay with --deadletter-database-url")
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := kafkabus.Ping(pctx, e.cfg.KafkaBrokers); err != nil {
			return nil, dlqSettingError("kafka-brokers", "%s", strings.TrimPrefix(err.Error(), "kafkabus: "))
		}
		bus, err := kafkabus.New(kafkabus.Config{Brokers: e.cfg.KafkaBrokers, ClientID: "piazza-dlq"}, nil)
		if err != nil {
			return nil, dlqSettingError("kafka-brokers", "%v", err)
		}
		e.closer = append(e.closer, bus.Close)
		return events.Namespaced(bus, e.cfg.BusNamespace), nil
	}
	path := filepath.Join(e.cfg.DataDir, "events.db")
	if _, err := os.Stat(path); err != nil {
		return nil, dlqSettingError("data-dir", "no embedded event bus at %s", path)
	}
	// A running `piazza dev` picks up messages written by this process at its next poll.
	bus, err := sqlbus.New(ctx, sqlbus.Config{Path: path, PruneInterval: -1}, nil)
	if err != nil {
		return nil, dlqSettingError("data-dir", "%v", err)
	}
	e.closer = append(e.closer, bus.Close)
	return bus, nil
}

// ------------------------------------------------------------------------------- commands

func dlqList(fs *flag.FlagSet) dlqAction {
	topic := fs.String("topic", "", "only dead letters of this original topic")
	limit := fs.Int("limit", 50, "at most this many, 1 to 1000")
	cursor := fs.String("cursor", "", "continue after the page that printed it")
	return func(ctx context.Context, e *dlqEnv, pos []string) error {
		if len(pos) > 0 {
			return fmt.Errorf("unexpected argument %q", pos[0])
		}
		if *limit < 1 || *limit > 1000 {
			return fmt.Errorf("--limit: %d is not in [1, 1000]", *limit)
		}
		a, err := e.service(ctx, false)
		if err != nil {
			return err
		}
		page, err := a.List(ctx, app.ListQuery{Topic: *topic, Cursor: *cursor, Limit: *limit})
		if err != nil {
			return err
		}
		return printList(e.stdout, page, *topic)
	}
}

func printList(w io.Writer, page app.Page, topic string) error {
	if len(page.Items) == 0 {
		if topic != "" {
			_, err := fmt.Fprintf(w, "no dead letters of topic %s\n", topic)
			return err
		}
		_, err := fmt.Fprintln(w, "no dead letters")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tARCHIVED\tTOPIC\tHANDLER\tATTEMPTS\tLAST FAILURE\tREPLAYED\tREASON")
	for _, en := range page.Items {
		replayed := "no"
		if en.Replayed() {
			replayed = fmt.Sprintf("%dx, last %s", en.ReplayCount, formatTime(en.ReplayedAt))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", en.ID, formatTime(en.ArchivedAt), orDash(en.Topic),
			orDash(en.Handler), en.Attempts, formatTime(en.LastFailedAt), replayed, oneLine(en.Reason, 80))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.NextCursor != "" {
		more := "piazza dlq list --cursor " + page.NextCursor
		if topic != "" {
			more += " --topic " + topic
		}
		_, err := fmt.Fprintf(w, "more: %s\n", more)
		return err
	}
	return nil
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps the table one row per entry: newlines and tabs become spaces, and the text
// is cut at limit runes.
func oneLine(s string, limit int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= limit {
		return s
	}
	r := []rune(s)
	return string(r[:limit-1]) + "…"
}

func dlqShow(_ *flag.FlagSet) dlqAction {
	return func(ctx context.Context, e *dlqEnv, pos []string) error {
		id, err := oneID(pos)
		if err != nil {
			return err
		}
		a, err := e.service(ctx, false)
		if err != nil {
			return err
		}
		en, err := a.Show(ctx, id)
		if err != nil {
			return err
		}
		return printEntry(e.stdout, en)
	}
}

func oneID(pos []string) (string, error) {
	switch len(pos) {
	case 0:
		return "", errors.New("missing the id of the dead letter")
	case 1:
		return pos[0], nil
	default:
		return "", fmt.Errorf("unexpected argument %q", pos[1])
	}
}

// entryView is how show prints an entry. The payload appears as JSON itself when it is JSON
// (an event envelope always is), as text when it is other UTF-8, else base64.
type entryView struct {
	ID            string            `json:"id"`
	MessageID     string            `json:"message_id"`
	Topic         string            `json:"topic"`
	Handler       string            `json:"handler"`
	Reason        string            `json:"reason"`
	Attempts      int               `json:"attempts"`
	FirstFailedAt *time.Time        `json:"first_failed_at"`
	LastFailedAt  *time.Time        `json:"last_failed_at"`
	ArchivedAt    time.Time         `json:"archived_at"`
	ReplayedAt    *time.Time        `json:"replayed_at"`
	ReplayCount   int               `json:"replay_count"`
	Metadata      map[string]string `json:"metadata"`
	Payload       json.RawMessage   `json:"payload,omitempty"`
	PayloadText   *string           `json:"payload_text,omitempty"`
	PayloadBase64 *string           `json:"payload_base64,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func printEntry(w io.Writer, en domain.Entry) error {
	v := entryView{
		ID: en.ID, MessageID: en.MessageID, Topic: en.Topic, Handler: en.Handler, Reason: en.Reason,
		Attempts: en.Attempts, FirstFailedAt: timePtr(en.FirstFailedAt), LastFailedAt: timePtr(en.LastFailedAt),
		ArchivedAt: en.ArchivedAt, ReplayedAt: timePtr(en.ReplayedAt), ReplayCount: en.ReplayCount,
		Metadata: en.Metadata,
	}
	switch {
	case utf8.Valid(en.Payload) && json.Valid(en.Payload):
		v.Payload = en.Payload
	case utf8.Valid(en.Payload):
		s := string(en.Payload)
		v.PayloadText = &s
	default:
		s := base64.StdEncoding.EncodeToString(en.Payload)
		v.PayloadBase64 = &s
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func dlqReplay(fs *flag.FlagSet) dlqAction {
	all := fs.Bool("all", false, "replay every dead letter never replayed (of --topic), oldest first")
	topic := fs.String("topic", "", "with --all: only dead letters of this original topic")
	return func(ctx context.Context, e *dlqEnv, pos []string) error {
		if *all {
			if len(pos) > 0 {
				return fmt.Errorf("give either an id or --all, not both (unexpected argument %q)", pos[0])
			}
			a, err := e.service(ctx, true)
			if err != nil {
				return err
			}
			n, err := a.ReplayAll(ctx, *topic)
			if err != nil {
				return fmt.Errorf("replayed %d dead letters, then: %w", n, err)
			}
			_, err = fmt.Fprintf(e.stdout, "replayed %d dead letters%s\n", n, ofTopic(*topic))
			return err
		}
		if *topic != "" {
			return errors.New("--topic goes with --all")
		}
		id, err := oneID(pos)
		if err != nil {
			return fmt.Errorf("%w (or --all)", err)
		}
		a, err := e.service(ctx, true)
		if err != nil {
			return err
		}
		en, err := a.Replay(ctx, id)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.stdout, "replayed %s (message %s) to %s; replayed %d time(s) in all\n",
			en.ID, en.MessageID, en.Topic, en.ReplayCount)
		return err
	}
}

func ofTopic(topic string) string {
	if topic == "" {
		return ""
	}
	return " of topic " + topic
}

func dlqPurge(fs *flag.FlagSet) dlqAction {
	var (
		olderThan time.Duration
		byAge     bool
	)
	fs.Func("older-than", "purge every dead letter archived longer ago than this (e.g. 720h)", func(s string) error {
		d, err := time.ParseDuration(s)
		olderThan, byAge = d, true
		return err
	})
	return func(ctx context.Context, e *dlqEnv, pos []string) error {
		if byAge {
			if len(pos) > 0 {
				return fmt.Errorf("give either an id or --older-than, not both (unexpected argument %q)", pos[0])
			}
			if olderThan < 0 {
				return fmt.Errorf("--older-than: %s is negative", olderThan)
			}
			a, err := e.service(ctx, false)
			if err != nil {
				return err
			}
			n, err := a.PurgeOlderThan(ctx, olderThan)
			if err != nil {
				return fmt.Errorf("purged %d dead letters, then: %w", n, err)
			}
			_, err = fmt.Fprintf(e.stdout, "purged %d dead letters archived more than %s ago\n", n, olderThan)
			return err
		}
		id, err := oneID(pos)
		if err != nil {
			return fmt.Errorf("%w (or --older-than)", err)
		}
		a, err := e.service(ctx, false)
		if err != nil {
			return err
		}
		if err := a.Purge(ctx, id); err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.stdout, "purged %s\n", id)
		return err
	}
}
