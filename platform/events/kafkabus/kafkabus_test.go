package kafkabus

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/piazza-social/piazza/platform/events"
)

func TestConfigDefaultsAndValidation(t *testing.T) {
	cfg := Config{Brokers: []string{"localhost:9092"}}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if cfg.ClientID != "piazza" || cfg.KafkaVersion != DefaultKafkaVersion || cfg.TopicPartitions != 16 ||
		cfg.TopicReplicationFactor != 1 || cfg.DialTimeout != 5*time.Second {
		t.Errorf("defaults = %+v", cfg)
	}
	for name, sc := range map[string]*sarama.Config{"admin": cfg.saramaConfig(), "producer": cfg.producerConfig(), "consumer": cfg.consumerConfig()} {
		if !sc.Version.IsAtLeast(sarama.V3_0_0_0) {
			t.Errorf("%s: sarama version %s predates Kafka 3; Kafka 4 rejects the old protocol versions", name, sc.Version)
		}
		if err := sc.Validate(); err != nil {
			t.Errorf("%s: sarama rejects the config: %v", name, err)
		}
	}
	if cfg.consumerConfig().Consumer.Offsets.Initial != sarama.OffsetOldest {
		t.Error("a new consumer group does not start at the oldest offset")
	}

	for name, mutate := range map[string]func(*Config){
		"no brokers":          func(c *Config) { c.Brokers = nil },
		"broker without port": func(c *Config) { c.Brokers = []string{"localhost"} },
		"bad version":         func(c *Config) { c.KafkaVersion = "four" },
		"zero partitions":     func(c *Config) { c.TopicPartitions = -1 },
		"zero replication":    func(c *Config) { c.TopicReplicationFactor = -1 },
		"negative timeout":    func(c *Config) { c.DialTimeout = -time.Second },
	} {
		t.Run(name, func(t *testing.T) {
			c := Config{Brokers: []string{"localhost:9092"}}
			mutate(&c)
			c.setDefaults()
			if err := c.Validate(); err == nil {
				t.Fatal("Validate accepted the config")
			}
		})
	}
}

func TestMarshalerKeysByPartitionKeyAndCarriesMetadataAsHeaders(t *testing.T) {
	msg := message.NewMessage("0190a3c2-0000-7000-8000-000000000001", []byte(`{"a":1}`))
	msg.Metadata.Set(events.PartitionKey, "author-7")
	msg.Metadata.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")

	pm, err := keyedMarshaler{}.Marshal("posts", msg)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pm.Key.Encode()
	if string(key) != "author-7" {
		t.Errorf("record key = %q, want the partition key", key)
	}

	// What a consumer reads back from the record.
	value, _ := pm.Value.Encode()
	cm := &sarama.ConsumerMessage{Value: value}
	for i := range pm.Headers {
		cm.Headers = append(cm.Headers, &pm.Headers[i])
	}
	got, err := keyedMarshaler{}.Unmarshal(cm)
	if err != nil {
		t.Fatal(err)
	}
	if got.UUID != msg.UUID || string(got.Payload) != string(msg.Payload) {
		t.Errorf("roundtrip = %s %q", got.UUID, got.Payload)
	}
	for k, v := range msg.Metadata {
		if got.Metadata.Get(k) != v {
			t.Errorf("metadata %s = %q, want %q", k, got.Metadata.Get(k), v)
		}
	}

	unkeyed, err := keyedMarshaler{}.Marshal("posts", message.NewMessage("id", []byte("{}")))
	if err != nil {
		t.Fatal(err)
	}
	if unkeyed.Key != nil {
		t.Error("a message without partition key got a record key; it would always hash to one partition")
	}
}

func TestPingFailsFastWhenNoBrokerIsReachable(t *testing.T) {
	// A port that refuses connections: listen, note the address, close.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().String()
	l.Close()

	// A port that accepts connections and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()

	for name, brokers := range map[string][]string{
		"connection refused":   {refused},
		"broker never answers": {silent.Addr().String()},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := Ping(ctx, brokers)
			if err == nil {
				t.Fatal("Ping succeeded")
			}
			if elapsed := time.Since(start); elapsed > 3*time.Second {
				t.Errorf("Ping took %s with a 500ms deadline", elapsed)
			}
			if !strings.Contains(err.Error(), "no Kafka broker reachable at "+brokers[0]) {
				t.Errorf("error %q does not say which brokers were unreachable", err)
			}
		})
	}
	if err := Ping(context.Background(), nil); err == nil {
		t.Error("Ping with no brokers succeeded")
	}
}

func TestPublishSendsDifferentKeysTogetherAndEachKeysMessagesOneRoundAfterAnother(t *testing.T) {
	msg := func(id, key string) *message.Message {
		m := message.NewMessage(id, []byte("{}"))
		if key != "" {
			m.Metadata.Set(events.PartitionKey, key)
		}
		return m
	}
	msgs := []*message.Message{
		msg("a1", "a"), msg("b1", "b"), msg("a2", "a"), msg("x", ""), msg("a3", "a"), msg("c1", "c"), msg("b2", "b"), msg("y", ""),
	}
	var got [][]string
	for _, wave := range waves(msgs) {
		var ids []string
		for _, m := range wave {
			ids = append(ids, m.UUID)
		}
		got = append(got, ids)
	}
	want := [][]string{{"a1", "b1", "x", "c1", "y"}, {"a2", "b2"}, {"a3"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("waves = %v, want %v", got, want)
	}
	if w := waves(nil); len(w) != 0 {
		t.Errorf("waves of nothing = %v", w)
	}
}
