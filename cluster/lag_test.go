package cluster

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A consumer far behind the stream for three checks in a row is logged
// and counted, once per 10 s at most; one that catches up is not.
func TestSlowConsumerDetected(t *testing.T) {
	var logs bytes.Buffer
	n := &Node{log: slog.New(slog.NewTextHandler(&logs, nil))}
	n.m = newMetrics(nil, n)
	a := &applier{n: n}
	now := time.Now()
	n.lag.Store(50_000)
	for i := 0; i < 5; i++ {
		a.watchLag(now.Add(time.Duration(i) * time.Second))
	}
	if got := testutil.ToFloat64(n.m.slowConsumers); got != 1 {
		t.Errorf("slow consumer counted %v times, want 1", got)
	}
	if !strings.Contains(logs.String(), "falling behind") {
		t.Errorf("no warning logged: %q", logs.String())
	}
	n.lag.Store(10)
	a.watchLag(now.Add(20 * time.Second))
	n.lag.Store(50_000)
	a.watchLag(now.Add(21 * time.Second))
	if got := testutil.ToFloat64(n.m.slowConsumers); got != 1 {
		t.Errorf("a consumer that caught up was counted again: %v", got)
	}
}
