package bench

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestScenarioRegistry(t *testing.T) {
	want := []string{"footprint", "hold", "fanout", "fanout-wide", "mixed", "throttle", "hold-50k", "churn"}
	if len(Scenarios) != len(want) {
		t.Fatalf("%d scenarios, want %v", len(Scenarios), want)
	}
	for _, name := range want {
		s, err := FindScenario(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if s.Name != name || s.Run == nil || s.Doc == "" {
			t.Errorf("%s: %+v", name, s)
		}
	}
	if _, err := FindScenario("nope"); !errors.Is(err, ErrUnknownScenario) || !strings.Contains(err.Error(), "fanout-wide") {
		t.Errorf("unknown scenario: %v", err)
	}
}

func TestChurnProblems(t *testing.T) {
	tests := []struct {
		name string
		st   ChurnStats
		want []string
	}{
		{"back to baseline", ChurnStats{Started: 10, GoroutinesBaseline: 10, GoroutinesAfter: 60, GoroutineSlack: 50,
			RSSBaseline: 100 << 20, RSSAfter: 116 << 20, RSSSlack: 16 << 20}, nil},
		{"goroutines left", ChurnStats{Started: 10, GoroutinesBaseline: 10, GoroutinesAfter: 61, GoroutineSlack: 50}, []string{"goroutines 61"}},
		{"memory left", ChurnStats{Started: 10, RSSBaseline: 100 << 20, RSSAfter: 117 << 20, RSSSlack: 16 << 20}, []string{"RSS 117.0 MiB"}},
		{"failed sessions", ChurnStats{Sessions: func() *Report {
			r := newReport()
			r.Failed, r.Failures["no_snapshot"] = 1, 1
			return r
		}()}, []string{"churning sessions: 1 sessions failed (no_snapshot=1)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.st.problems()
			if len(got) != len(tt.want) {
				t.Fatalf("problems %q, want %q", got, tt.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("problem %q lacks %q", got[i], tt.want[i])
				}
			}
			var text bytes.Buffer
			tt.st.writeText(&text)
			if !strings.Contains(text.String(), "goroutines") || !strings.Contains(text.String(), "churn rss") {
				t.Errorf("text:\n%s", text.String())
			}
		})
	}
}
