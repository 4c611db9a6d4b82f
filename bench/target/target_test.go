package target

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func TestParseMetricsSumsSamplesOverLabels(t *testing.T) {
	m, err := parseMetrics(strings.NewReader(`# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 126
process_resident_memory_bytes 4.4736512e+07
gateway_sse_deliveries_total{otel_scope_name="stream",type="a"} 10
gateway_sse_deliveries_total{otel_scope_name="stream",type="b {x}"} 5
broken_line
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"go_goroutines": 126, "process_resident_memory_bytes": 44736512, "gateway_sse_deliveries_total": 15}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Fatalf("parsed %v, want %v", m, want)
	}
}

func TestReadStatsTakesTheAdminMetricsAndFallsBackToProc(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "go_memstats_heap_inuse_bytes 1000\nprocess_open_fds 7\ngo_goroutines 3\n")
	}))
	defer srv.Close()
	s, err := ReadStats(context.Background(), srv.Client(), srv.URL, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.HeapInuseBytes != 1000 || s.OpenFDs != 7 || s.Goroutines != 3 {
		t.Errorf("stats %+v: want the admin's heap, fds and goroutines", s)
	}
	if s.RSSBytes <= 0 {
		t.Errorf("RSS %d: want it read from /proc when the metrics lack it", s.RSSBytes)
	}
	if s.MaxFDs != -1 || s.SSEConnections != -1 {
		t.Errorf("stats %+v: want -1 for figures neither source has", s)
	}
}
