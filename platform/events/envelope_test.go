package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

var testPropagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

type postCreated struct {
	PostID string `json:"post_id"`
	Text   string `json:"text"`
}

func TestNewFillsEveryEnvelopeField(t *testing.T) {
	before := time.Now()
	env, err := New("post.created", "author-1", "post", postCreated{PostID: "p1", Text: "hi"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	id, err := uuid.Parse(env.ID)
	if err != nil || id.Version() != 7 {
		t.Errorf("ID = %q, want a UUIDv7 (parse error %v)", env.ID, err)
	}
	if env.Type != "post.created" || env.AggregateID != "author-1" || env.Producer != "post" {
		t.Errorf("type/aggregate/producer = %q/%q/%q", env.Type, env.AggregateID, env.Producer)
	}
	if env.SchemaVersion != CurrentSchemaVersion {
		t.Errorf("SchemaVersion = %d, want %d", env.SchemaVersion, CurrentSchemaVersion)
	}
	if env.OccurredAt.Before(before.Add(-time.Second)) || env.OccurredAt.Location() != time.UTC {
		t.Errorf("OccurredAt = %v, want now in UTC", env.OccurredAt)
	}
	var p postCreated
	if err := env.DecodePayload(&p); err != nil || p != (postCreated{PostID: "p1", Text: "hi"}) {
		t.Errorf("DecodePayload = %+v, %v", p, err)
	}
}

func TestNewRejectsMissingFieldsAndUnmarshallablePayload(t *testing.T) {
	for name, tc := range map[string]struct {
		eventType, aggregate, producer string
		payload                        any
	}{
		"no type":       {"", "a", "p", 1},
		"no aggregate":  {"t", "", "p", 1},
		"no producer":   {"t", "a", "", 1},
		"channel value": {"t", "a", "p", make(chan int)},
		"nil payload":   {"t", "a", "p", nil},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(tc.eventType, tc.aggregate, tc.producer, tc.payload); err == nil {
				t.Fatal("New succeeded, want an error")
			}
		})
	}
}

func TestMessageRoundtripKeepsEnvelopeAndSetsMetadata(t *testing.T) {
	env, err := New("post.created", "author-1", "post", postCreated{PostID: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := NewMessage(context.Background(), env, testPropagator)
	if err != nil {
		t.Fatalf("NewMessage: %v", err)
	}
	if msg.UUID != env.ID {
		t.Errorf("message UUID = %q, want the event id %q", msg.UUID, env.ID)
	}
	if got := msg.Metadata.Get(MetadataEventType); got != "post.created" {
		t.Errorf("metadata %s = %q", MetadataEventType, got)
	}
	if got := msg.Metadata.Get(PartitionKey); got != "author-1" {
		t.Errorf("metadata %s = %q, want the aggregate id", PartitionKey, got)
	}
	var onWire map[string]any
	if err := json.Unmarshal(msg.Payload, &onWire); err != nil {
		t.Fatalf("payload is not JSON: %v", err)
	}
	for _, field := range []string{"id", "type", "occurred_at", "producer", "aggregate_id", "schema_version", "payload"} {
		if _, ok := onWire[field]; !ok {
			t.Errorf("payload lacks envelope field %q: %s", field, msg.Payload)
		}
	}
	got, err := Decode(msg)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if got.ID != env.ID || got.Type != env.Type || !got.OccurredAt.Equal(env.OccurredAt) || string(got.Payload) != string(env.Payload) {
		t.Errorf("Decode = %+v, want %+v", got, env)
	}
}

func TestDecodeRejectsMalformedEnvelopesAsPermanent(t *testing.T) {
	valid, err := New("post.created", "author-1", "post", map[string]int{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	encode := func(mutate func(*Envelope)) []byte {
		e := valid
		mutate(&e)
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for name, tc := range map[string]struct {
		uuid    string
		payload []byte
	}{
		"not JSON":             {valid.ID, []byte("{nope")},
		"JSON array":           {valid.ID, []byte("[1,2]")},
		"id not a UUID":        {"x", encode(func(e *Envelope) { e.ID = "x" })},
		"missing type":         {valid.ID, encode(func(e *Envelope) { e.Type = "" })},
		"missing occurred_at":  {valid.ID, encode(func(e *Envelope) { e.OccurredAt = time.Time{} })},
		"schema version 0":     {valid.ID, encode(func(e *Envelope) { e.SchemaVersion = 0 })},
		"missing payload":      {valid.ID, encode(func(e *Envelope) { e.Payload = nil })},
		"id differs from UUID": {uuid.NewString(), encode(func(*Envelope) {})},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Decode(message.NewMessage(tc.uuid, tc.payload))
			if err == nil {
				t.Fatal("Decode succeeded, want an error")
			}
			if !errors.Is(err, ErrMalformedEnvelope) {
				t.Errorf("error %q does not wrap ErrMalformedEnvelope", err)
			}
			if !IsPermanent(err) {
				t.Errorf("error %q is not Permanent", err)
			}
		})
	}
}

func TestDecodePayloadMismatchIsPermanent(t *testing.T) {
	env, err := New("post.created", "a", "p", map[string]string{"post_id": "p1"})
	if err != nil {
		t.Fatal(err)
	}
	var wrong struct {
		PostID int `json:"post_id"`
	}
	if err := env.DecodePayload(&wrong); err == nil || !IsPermanent(err) {
		t.Fatalf("DecodePayload into a mismatched type = %v, want a Permanent error", err)
	}
}

func TestPermanentMarksErrorsThroughWrapping(t *testing.T) {
	base := errors.New("bad input")
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
	if IsPermanent(base) {
		t.Error("a plain error is Permanent")
	}
	wrapped := fmt.Errorf("handler: %w", Permanent(base))
	if !IsPermanent(wrapped) {
		t.Error("a wrapped Permanent error is not Permanent")
	}
	if !errors.Is(wrapped, base) || wrapped.Error() != "handler: bad input" {
		t.Errorf("Permanent changed the error: %q", wrapped)
	}
}

func TestTraceContextAndBaggageTravelInMetadata(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	member, _ := baggage.NewMember("tenant", "piazza")
	bag, _ := baggage.New(member)
	ctx, span := tp.Tracer("test").Start(baggage.ContextWithBaggage(context.Background(), bag), "producer")
	defer span.End()

	msg := message.NewMessage(uuid.NewString(), []byte("{}"))
	InjectContext(ctx, msg, testPropagator)
	if msg.Metadata.Get("traceparent") == "" || msg.Metadata.Get("baggage") == "" {
		t.Fatalf("metadata after inject = %v, want traceparent and baggage", msg.Metadata)
	}

	got := ContextFromMessage(context.Background(), msg, testPropagator)
	sc := trace.SpanContextFromContext(got)
	if sc.TraceID() != span.SpanContext().TraceID() || sc.SpanID() != span.SpanContext().SpanID() || !sc.IsRemote() {
		t.Errorf("extracted span context %v, want the producer's %v as remote", sc, span.SpanContext())
	}
	if v := baggage.FromContext(got).Member("tenant").Value(); v != "piazza" {
		t.Errorf("extracted baggage tenant = %q", v)
	}
}
