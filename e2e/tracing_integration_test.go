//go:build integration

package e2e

import (
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/piazza-social/piazza/platform/telemetry/telemetrytest"
)

func TestOnePostIsOneTraceFromTheRequestToEveryRecipientsStream(t *testing.T) {
	otlp, received := telemetrytest.StartOTLPReceiver(t)
	d := startDistributedWith(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + otlp}, "--log-level=debug")
	gw := d.gw1

	suffix := uniqueSuffix()
	a := signup(t, gw, "tia_"+suffix)
	b := signup(t, gw, "tom_"+suffix)
	expect(t, "A follows B", gw.do(http.MethodPost, "/v1/users/"+b.User.Username+"/follow", a.AccessToken, nil), http.StatusNoContent, "")
	s := gw.openStream(a.AccessToken, "")
	postID := createPost(t, gw, b.AccessToken, "traced from end to end")
	if n := s.notification("B's post", deliveryTimeout); n.Type != "post.created" || dataField(t, n, "post_id") != postID {
		t.Fatalf("got %s %s, want post.created of %s", n.Type, n.Data, postID)
	}
	// An error response names its trace.
	r := gw.do(http.MethodPost, "/v1/posts", b.AccessToken, map[string]string{"text": "  "})
	expect(t, "an empty post", r, http.StatusBadRequest, "validation_failed")
	var problem struct {
		TraceID string `json:"trace_id"`
		SpanID  string `json:"span_id"`
	}
	r.JSON(t, &problem)
	s.close()
	d.stopAll(t)

	tr := newTraceView(t, received())
	post := tr.find(t, "the request span of the post", func(s telemetrytest.Span) bool {
		return s.ServiceName() == "gateway-service" && s.Name() == "POST /v1/posts" && s.Proto.GetKind() == tracepb.Span_SPAN_KIND_SERVER && status(s) == http.StatusCreated
	})
	tr.only(post.TraceID())

	// gateway → post-service over gRPC.
	call := tr.find(t, "the gateway's CreatePost call", func(s telemetrytest.Span) bool {
		return s.ServiceName() == "gateway-service" && strings.HasSuffix(s.Name(), "/CreatePost") && s.Proto.GetKind() == tracepb.Span_SPAN_KIND_CLIENT
	})
	tr.requireDescendant(t, call, post)
	served := tr.find(t, "post-service's CreatePost", func(s telemetrytest.Span) bool {
		return s.ServiceName() == "post-service" && strings.HasSuffix(s.Name(), "/CreatePost") && s.Proto.GetKind() == tracepb.Span_SPAN_KIND_SERVER
	})
	tr.requireParent(t, served, call)

	// The post's row and its event, written by PostgreSQL statements of the same trace.
	for _, table := range []string{"posts", "outbox_messages"} {
		insert := tr.find(t, "the INSERT INTO "+table, func(s telemetrytest.Span) bool {
			return s.ServiceName() == "post-service" && s.Name() == "INSERT" && s.Attr("db.system.name") == "postgresql" &&
				strings.Contains(s.Attr("db.query.text"), "INSERT INTO "+table)
		})
		tr.requireDescendant(t, insert, served)
	}

	// The outbox forwarder sends the event under the request; notification-service consumes
	// it under the send.
	send := tr.find(t, "the forwarder's send of post.created", func(s telemetrytest.Span) bool {
		return s.ServiceName() == "post-service" && s.Name() == "send posts" && s.Proto.GetKind() == tracepb.Span_SPAN_KIND_PRODUCER
	})
	tr.requireDescendant(t, send, served)
	process := tr.find(t, "notification-service's handling of post.created", func(s telemetrytest.Span) bool {
		return s.ServiceName() == "notification-service" && s.Name() == "process posts" && s.Proto.GetKind() == tracepb.Span_SPAN_KIND_CONSUMER
	})
	tr.requireParent(t, process, send)
	deliver := tr.find(t, "the delivery to the followers", func(s telemetrytest.Span) bool {
		return s.ServiceName() == "notification-service" && s.Name() == "notification.deliver"
	})
	tr.requireDescendant(t, deliver, process)
	inbox := tr.find(t, "the inbox INSERT", func(s telemetrytest.Span) bool {
		return s.ServiceName() == "notification-service" && s.Name() == "INSERT" && s.Attr("db.system.name") == "postgresql"
	})
	tr.requireDescendant(t, inbox, process)

	// The push to A's gateway: a producer span, the Redis PUBLISH under it.
	push := tr.find(t, "the push to the gateway", func(s telemetrytest.Span) bool {
		return s.ServiceName() == "notification-service" && s.Name() == "send gateway_events" && s.Proto.GetKind() == tracepb.Span_SPAN_KIND_PRODUCER
	})
	tr.requireParent(t, push, deliver)
	publish := tr.find(t, "the Redis PUBLISH", func(s telemetrytest.Span) bool {
		return s.ServiceName() == "notification-service" && s.Name() == "publish" && s.Proto.GetKind() == tracepb.Span_SPAN_KIND_CLIENT
	})
	tr.requireParent(t, publish, push)

	// The gateway takes the batch under the push, and writes to A's stream under the batch,
	// linking it.
	batch := tr.find(t, "the gateway's handling of the batch", func(s telemetrytest.Span) bool {
		return s.ServiceName() == "gateway-service" && s.Name() == "deliver notifications" && s.Proto.GetKind() == tracepb.Span_SPAN_KIND_CONSUMER
	})
	tr.requireParent(t, batch, push)
	write := tr.find(t, "the write to A's stream", func(s telemetrytest.Span) bool {
		return s.ServiceName() == "gateway-service" && s.Name() == "sse write"
	})
	tr.requireParent(t, write, batch)
	linked := false
	for _, l := range write.Proto.GetLinks() {
		linked = linked || hex.EncodeToString(l.GetSpanId()) == batch.SpanID()
	}
	if !linked {
		t.Errorf("the stream write does not link the batch span")
	}

	// Every hop logged with the trace id.
	for _, name := range []string{"gateway-1", "post-service", "notification-service"} {
		if !strings.Contains(d.procs[name].out.String(), `"trace_id":"`+post.TraceID()+`"`) {
			t.Errorf("%s logged nothing with trace_id %s", name, post.TraceID())
		}
	}

	// The error response's trace is the trace of its request.
	all := newTraceView(t, received())
	all.only(problem.TraceID)
	failed := all.find(t, "the request span of the empty post", func(s telemetrytest.Span) bool {
		return s.ServiceName() == "gateway-service" && s.Name() == "POST /v1/posts" && s.Proto.GetKind() == tracepb.Span_SPAN_KIND_SERVER
	})
	if status(failed) != http.StatusBadRequest {
		t.Errorf("trace %s of the 400 is a request answered %d", problem.TraceID, status(failed))
	}
	if _, ok := all.byID[problem.SpanID]; !ok {
		t.Errorf("the problem's span_id %s is no span of its trace", problem.SpanID)
	}
}

// traceView indexes exported spans, narrowed to one trace with only.
type traceView struct {
	all  []telemetrytest.Span
	in   []telemetrytest.Span
	byID map[string]telemetrytest.Span
}

func newTraceView(t *testing.T, spans []telemetrytest.Span) *traceView {
	t.Helper()
	if len(spans) == 0 {
		t.Fatal("no span was exported")
	}
	return &traceView{all: spans, in: spans, byID: map[string]telemetrytest.Span{}}
}

// only narrows the view to the spans of trace id.
func (v *traceView) only(id string) {
	v.in = nil
	clear(v.byID)
	for _, s := range v.all {
		if s.TraceID() == id {
			v.in = append(v.in, s)
			v.byID[s.SpanID()] = s
		}
	}
}

// find returns the first span of the view that matches, failing the test with the view's
// spans when none does.
func (v *traceView) find(t *testing.T, what string, match func(telemetrytest.Span) bool) telemetrytest.Span {
	t.Helper()
	for _, s := range v.in {
		if match(s) {
			return s
		}
	}
	t.Fatalf("no span for %s among the %d spans of the trace:\n%s", what, len(v.in), v.describe())
	return telemetrytest.Span{}
}

func (v *traceView) describe() string {
	var b strings.Builder
	for _, s := range v.in {
		b.WriteString("  " + s.ServiceName() + " " + s.Name() + " " + s.Proto.GetKind().String() + " id=" + s.SpanID() + " parent=" + s.ParentSpanID() + "\n")
	}
	return b.String()
}

func (v *traceView) requireParent(t *testing.T, child, parent telemetrytest.Span) {
	t.Helper()
	if child.ParentSpanID() != parent.SpanID() {
		t.Errorf("%s/%s is not a child of %s/%s", child.ServiceName(), child.Name(), parent.ServiceName(), parent.Name())
	}
}

// requireDescendant fails unless ancestor is on the parent chain of s.
func (v *traceView) requireDescendant(t *testing.T, s, ancestor telemetrytest.Span) {
	t.Helper()
	for cur, hops := s, 0; hops < len(v.in); hops++ {
		p, ok := v.byID[cur.ParentSpanID()]
		if !ok {
			break
		}
		if p.SpanID() == ancestor.SpanID() {
			return
		}
		cur = p
	}
	t.Errorf("%s/%s does not descend from %s/%s", s.ServiceName(), s.Name(), ancestor.ServiceName(), ancestor.Name())
}

// status is the HTTP status a server span answered, 0 if none.
func status(s telemetrytest.Span) int64 {
	for _, kv := range s.Proto.GetAttributes() {
		if kv.GetKey() == "http.response.status_code" {
			return kv.GetValue().GetIntValue()
		}
	}
	return 0
}
