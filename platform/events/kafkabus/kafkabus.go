// Package kafkabus is the Kafka adapter of events.Bus, on watermill-kafka and IBM/sarama: it
// publishes through sarama's producer directly, so that a Publish of many messages waits for
// one round of acknowledgements rather than one per message, and consumes through
// watermill-kafka's subscriber.
//
// Messages are keyed by their events.PartitionKey metadata, so one aggregate's events land on
// one partition and are consumed in order. Metadata travels as Kafka record headers (trace
// context included). Each consumer group starts at the oldest offset when it is new, and its
// offsets advance only past messages that a handler acked. Topics are created on first use,
// with Config.TopicPartitions partitions.
//
// The bus measures the consumer lag of every group it subscribes (per topic and partition) in
// the background and reports it as the gauge events.consumer.lag (LagMetric).
package kafkabus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/piazza-social/piazza/platform/events"
)

// DefaultKafkaVersion is the protocol version spoken to the brokers. Kafka 4 removed the
// request versions older than Kafka 2.1 that sarama would pick for its own default-compatible
// settings, so the version is pinned to 4.0.
const DefaultKafkaVersion = "4.0.0"

// Config configures a Bus.
type Config struct {
	// Brokers are the bootstrap brokers, host:port. Required.
	Brokers []string
	// ClientID names this process to the brokers (logs, quotas); default "piazza".
	ClientID string
	// KafkaVersion is the broker protocol version, "major.minor.patch"; default
	// DefaultKafkaVersion.
	KafkaVersion string
	// TopicPartitions is the partition count of the topics the bus creates; default 16. It
	// bounds a consumer group's parallelism: a subscriber handles one message at a time per
	// partition, and a handler mostly waits on its databases and peers, so a group handles
	// about TopicPartitions messages at once. Topics that exist keep their count.
	TopicPartitions int32
	// TopicReplicationFactor is the replication factor of the topics the bus creates;
	// default 1 (a single-broker cluster).
	TopicReplicationFactor int16
	// DialTimeout bounds connecting to a broker; default 5s.
	DialTimeout time.Duration
	// NackResendSleep is how long a subscriber waits before redelivering a nacked message;
	// default 100ms.
	NackResendSleep time.Duration
	// LagInterval is how often the consumer lag of the subscribed groups is measured; default
	// 5s. A new subscription is measured at once.
	LagInterval time.Duration
	// MeterProvider makes the bus's instruments; nil means otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
}

func (c *Config) setDefaults() {
	if c.ClientID == "" {
		c.ClientID = "piazza"
	}
	if c.KafkaVersion == "" {
		c.KafkaVersion = DefaultKafkaVersion
	}
	if c.TopicPartitions == 0 {
		c.TopicPartitions = 16
	}
	if c.TopicReplicationFactor == 0 {
		c.TopicReplicationFactor = 1
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.NackResendSleep == 0 {
		c.NackResendSleep = 100 * time.Millisecond
	}
	if c.LagInterval == 0 {
		c.LagInterval = 5 * time.Second
	}
	if c.MeterProvider == nil {
		c.MeterProvider = otel.GetMeterProvider()
	}
}

// Validate reports every problem of a config whose defaults are filled.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("no brokers"))
	}
	for _, b := range c.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("broker %q is not host:port", b))
		}
	}
	if _, err := sarama.ParseKafkaVersion(c.KafkaVersion); err != nil {
		errs = append(errs, fmt.Errorf("KafkaVersion: %w", err))
	}
	if c.TopicPartitions < 1 {
		errs = append(errs, fmt.Errorf("TopicPartitions %d is below 1", c.TopicPartitions))
	}
	if c.TopicReplicationFactor < 1 {
		errs = append(errs, fmt.Errorf("TopicReplicationFactor %d is below 1", c.TopicReplicationFactor))
	}
	if c.DialTimeout < 0 || c.NackResendSleep < 0 {
		errs = append(errs, errors.New("timeouts must not be negative"))
	}
	if c.LagInterval <= 0 {
		errs = append(errs, fmt.Errorf("LagInterval %s is not positive", c.LagInterval))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kafkabus: invalid config: %w", err)
	}
	return nil
}

// saramaConfig is the client configuration shared by the admin client, the producer and the
// consumers.
func (c Config) saramaConfig() *sarama.Config {
	sc := sarama.NewConfig()
	sc.ClientID = c.ClientID
	sc.Version, _ = sarama.ParseKafkaVersion(c.KafkaVersion) // checked by Validate
	sc.Net.DialTimeout = c.DialTimeout
	sc.Metadata.Retry.Backoff = 250 * time.Millisecond
	return sc
}

func (c Config) producerConfig() *sarama.Config {
	sc := c.saramaConfig()
	// Every in-sync replica acknowledges, and the idempotent producer keeps its retries from
	// duplicating or reordering messages within a partition (which needs one request in
	// flight per connection).
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Idempotent = true
	sc.Net.MaxOpenRequests = 1
	sc.Producer.Retry.Max = 10
	sc.Producer.Return.Successes = true
	sc.Producer.Partitioner = sarama.NewHashPartitioner
	return sc
}

func (c Config) consumerConfig() *sarama.Config {
	sc := c.saramaConfig()
	// A new group reads the topic from the start. watermill-kafka marks an offset only once its
	// message is acked, and the periodic auto-commit sends only marked offsets, so a message is
	// consumed for the group only after a handler acked it.
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Consumer.Offsets.AutoCommit.Enable = true
	sc.Consumer.Return.Errors = true
	// Sticky assignment moves as few partitions as possible when a member joins or leaves.
	sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategySticky()}
	return sc
}

// Bus is the Kafka events.Bus. It is safe for concurrent use.
type Bus struct {
	cfg      Config
	log      *slog.Logger
	wmLog    watermill.LoggerAdapter
	producer sarama.SyncProducer
	admin    sarama.ClusterAdmin
	lag      *lagMonitor
	stopLag  context.CancelFunc
	lagDone  chan struct{}

	mu          sync.Mutex
	topics      map[string]bool // topics known to exist
	subscribers []*kafka.Subscriber
	closed      bool
}

var _ events.Bus = (*Bus)(nil)

// New validates cfg, fills its defaults and connects to the brokers. A nil log discards the
// bus's logs.
func New(cfg Config, log *slog.Logger) (*Bus, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// watermill-kafka logs each subscription and reconnection at Info; they are detail here.
	wmLog := watermill.NewSlogLoggerWithLevelMapping(log, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})

	// The lag monitor shares the admin client's connections: it needs both the admin requests
	// (committed offsets) and the client's (high watermarks).
	client, err := sarama.NewClient(cfg.Brokers, cfg.saramaConfig())
	if err != nil {
		return nil, fmt.Errorf("kafkabus: connect admin client to %s: %w", strings.Join(cfg.Brokers, ","), err)
	}
	admin, err := sarama.NewClusterAdminFromClient(client) // closing admin closes client
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("kafkabus: connect admin client to %s: %w", strings.Join(cfg.Brokers, ","), err)
	}
	lag, err := newLagMonitor(client, admin, cfg.LagInterval, cfg.MeterProvider, log)
	if err != nil {
		_ = admin.Close()
		return nil, err
	}
	producer, err := sarama.NewSyncProducer(cfg.Brokers, cfg.producerConfig())
	if err != nil {
		_ = lag.close()
		_ = admin.Close()
		return nil, fmt.Errorf("kafkabus: connect producer to %s: %w", strings.Join(cfg.Brokers, ","), err)
	}
	b := &Bus{
		cfg:      cfg,
		log:      log,
		wmLog:    wmLog,
		producer: producer,
		admin:    admin,
		lag:      lag,
		lagDone:  make(chan struct{}),
		topics:   map[string]bool{},
	}
	var lagCtx context.Context
	lagCtx, b.stopLag = context.WithCancel(context.Background())
	go func() {
		defer close(b.lagDone)
		lag.run(lagCtx)
	}()
	return b, nil
}

// Publish sends msgs to topic, creating the topic if needed, and returns once every message
// is acknowledged by all in-sync replicas.
//
// Messages of different partition keys are sent together, with one round of acknowledgements
// for all of them (not one per message); the messages of one key are sent in order, each in
// the round after the previous one, so that when one fails none of its key's later messages
// is published before the caller's retry. On an error, messages of other keys may have been
// published: a retry publishes them again, as at-least-once delivery allows.
func (b *Bus) Publish(topic string, msgs ...*message.Message) error {
	// message.Publisher carries no context; topic creation is bounded by its own timeout.
	ctx, cancel := context.WithTimeout(context.Background(), topicReadyTimeout)
	defer cancel()
	if err := b.ensureTopic(ctx, topic); err != nil {
		return err
	}
	for _, wave := range waves(msgs) {
		pms := make([]*sarama.ProducerMessage, len(wave))
		for i, msg := range wave {
			pm, err := keyedMarshaler{}.Marshal(topic, msg)
			if err != nil {
				return fmt.Errorf("kafkabus: publish to %s: message %s: %w", topic, msg.UUID, err)
			}
			pms[i] = pm
		}
		if err := b.producer.SendMessages(pms); err != nil {
			var failed sarama.ProducerErrors
			if errors.As(err, &failed) && len(failed) > 0 {
				err = fmt.Errorf("%d of %d messages failed, the first with: %w", len(failed), len(pms), failed[0].Err)
			}
			return fmt.Errorf("kafkabus: publish to %s: %w", topic, err)
		}
	}
	return nil
}

// waves splits msgs into rounds of sending that keep each partition key's order: the n-th
// message of a key goes in the n-th wave, and messages without a key, which have no order to
// keep, in the first. Each wave holds its messages in the order given.
func waves(msgs []*message.Message) [][]*message.Message {
	var out [][]*message.Message
	sent := map[string]int{} // messages of each key placed so far
	for _, msg := range msgs {
		w := 0
		if key := msg.Metadata.Get(events.PartitionKey); key != "" {
			w = sent[key]
			sent[key] = w + 1
		}
		if w == len(out) {
			out = append(out, nil)
		}
		out[w] = append(out[w], msg)
	}
	return out
}

// Subscriber returns a subscriber consuming as the consumer group named group. Each Subscribe
// call joins the group with its own connection.
func (b *Bus) Subscriber(group string) (message.Subscriber, error) {
	if group == "" {
		return nil, errors.New("kafkabus: consumer group name is empty")
	}
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{
		Brokers:               b.cfg.Brokers,
		Unmarshaler:           keyedMarshaler{},
		OverwriteSaramaConfig: b.cfg.consumerConfig(),
		ConsumerGroup:         group,
		NackResendSleep:       b.cfg.NackResendSleep,
	}, b.wmLog)
	if err != nil {
		return nil, fmt.Errorf("kafkabus: subscriber for group %s: %w", group, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("kafkabus: bus is closed")
	}
	b.subscribers = append(b.subscribers, sub)
	return &subscriber{bus: b, sub: sub, group: group}, nil
}

// Close closes the producer, the admin client and every subscriber not yet closed.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	subs := b.subscribers
	b.mu.Unlock()

	b.stopLag()
	var errs []error
	for _, s := range subs {
		errs = append(errs, s.Close()) // idempotent in watermill-kafka
	}
	// A measurement in flight fails fast on the closed client.
	errs = append(errs, b.producer.Close(), b.lag.close(), b.admin.Close())
	<-b.lagDone
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kafkabus: close: %w", err)
	}
	return nil
}

// subscriber makes sure the topic exists before joining the group: a consumer group on a
// missing topic would fail and retry its join instead of waiting for the first message.
type subscriber struct {
	bus   *Bus
	sub   *kafka.Subscriber
	group string

	mu     sync.Mutex
	topics []string // subscribed, for the lag monitor
	closed bool
}

func (s *subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	readyCtx, cancel := context.WithTimeout(ctx, topicReadyTimeout)
	defer cancel()
	if err := s.bus.ensureTopic(readyCtx, topic); err != nil {
		return nil, err
	}
	msgs, err := s.sub.Subscribe(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("kafkabus: subscribe group %s to %s: %w", s.group, topic, err)
	}
	s.mu.Lock()
	if !s.closed {
		s.topics = append(s.topics, topic)
		s.bus.lag.add(groupTopic{s.group, topic})
	}
	s.mu.Unlock()
	return msgs, nil
}

func (s *subscriber) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		for _, topic := range s.topics {
			s.bus.lag.remove(groupTopic{s.group, topic})
		}
	}
	s.mu.Unlock()
	return s.sub.Close()
}

// topicReadyTimeout bounds creating a topic and waiting for its partitions to have leaders.
const topicReadyTimeout = 30 * time.Second

// ensureTopic creates topic unless it is known to exist, then waits until every partition has
// a leader, so that the first produce or group join does not race the creation.
func (b *Bus) ensureTopic(ctx context.Context, topic string) error {
	b.mu.Lock()
	known := b.topics[topic]
	b.mu.Unlock()
	if known {
		return nil
	}
	err := b.admin.CreateTopic(topic, &sarama.TopicDetail{
		NumPartitions:     b.cfg.TopicPartitions,
		ReplicationFactor: b.cfg.TopicReplicationFactor,
	}, false)
	switch {
	case err == nil:
		b.log.InfoContext(ctx, "created kafka topic", "topic", topic, "partitions", b.cfg.TopicPartitions)
	case errors.Is(err, sarama.ErrTopicAlreadyExists):
	default:
		return fmt.Errorf("kafkabus: create topic %s: %w", topic, err)
	}
	if err := b.awaitLeaders(ctx, topic); err != nil {
		return err
	}
	b.mu.Lock()
	b.topics[topic] = true
	b.mu.Unlock()
	return nil
}

func (b *Bus) awaitLeaders(ctx context.Context, topic string) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		md, err := b.admin.DescribeTopics([]string{topic})
		switch {
		case err != nil:
			lastErr = err
		case len(md) != 1:
			lastErr = fmt.Errorf("metadata for %d topics", len(md))
		case !errors.Is(md[0].Err, sarama.ErrNoError):
			lastErr = md[0].Err
		case len(md[0].Partitions) == 0:
			lastErr = errors.New("no partitions yet")
		default:
			lastErr = nil
			for _, p := range md[0].Partitions {
				if !errors.Is(p.Err, sarama.ErrNoError) || p.Leader < 0 {
					lastErr = fmt.Errorf("partition %d has no leader yet", p.ID)
					break
				}
			}
			if lastErr == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafkabus: topic %s not ready: %w (last: %v)", topic, ctx.Err(), lastErr)
		case <-tick.C:
		}
	}
}

// keyedMarshaler is watermill-kafka's default marshaler (metadata as headers, UUID in a
// header) that also sets the record key from the events.PartitionKey metadata. Unlike
// kafka.NewWithPartitioningMarshaler it leaves the key nil when there is no partition key, so
// such messages spread over partitions instead of all hashing the empty key to one.
type keyedMarshaler struct{ kafka.DefaultMarshaler }

func (m keyedMarshaler) Marshal(topic string, msg *message.Message) (*sarama.ProducerMessage, error) {
	pm, err := m.DefaultMarshaler.Marshal(topic, msg)
	if err != nil {
		return nil, err
	}
	if key := msg.Metadata.Get(events.PartitionKey); key != "" {
		pm.Key = sarama.StringEncoder(key)
	}
	return pm, nil
}

// Ping checks that at least one of brokers answers a metadata request within the shorter of
// ctx's deadline and 5 seconds, and returns one clear error otherwise. The binary calls it at
// start-up so that an unreachable Kafka is reported at once.
func Ping(ctx context.Context, brokers []string) error {
	if len(brokers) == 0 {
		return errors.New("kafkabus: ping: no brokers configured")
	}
	timeout := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	cfg := Config{Brokers: brokers, DialTimeout: timeout}
	cfg.setDefaults()
	sc := cfg.saramaConfig()
	sc.Net.ReadTimeout = timeout
	sc.Net.WriteTimeout = timeout
	// NewClient fetches metadata (Metadata.Full is on) from the first broker that answers; with
	// no retries it tries each broker once.
	sc.Metadata.Retry.Max = 0

	where := strings.Join(brokers, ",")
	done := make(chan error, 1)
	go func() {
		client, err := sarama.NewClient(brokers, sc)
		if err == nil {
			err = client.Close()
		}
		done <- err
	}()
	timer := time.NewTimer(timeout + time.Second) // the client's own timeouts normally fire first
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("kafkabus: no Kafka broker reachable at %s within %s: %w", where, timeout.Round(time.Millisecond), err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kafkabus: no Kafka broker reachable at %s: %w", where, ctx.Err())
	case <-timer.C:
		return fmt.Errorf("kafkabus: no Kafka broker reachable at %s within %s", where, timeout.Round(time.Millisecond))
	}
}
