package client

import (
	"bufio"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

func msg(typ, sym string, seq uint64, kv ...string) *Message {
	m := &Message{Type: typ, Symbol: sym, Seq: seq, TS: time.Now().UnixMicro(), Fields: FieldValues{}}
	for i := 0; i < len(kv); i += 2 {
		m.Fields[kv[i]] = kv[i+1]
	}
	return m
}

func TestBookApply(t *testing.T) {
	b := newBook()
	now := time.Now()
	steps := []struct {
		name    string
		m       *Message
		changed FieldValues // nil: no change
		removed []string
		record  FieldValues
	}{
		{"first snapshot", msg(TypeSnapshot, "A", 3, "bid", "1", "ask", "2"), FieldValues{"bid": "1", "ask": "2"}, nil, FieldValues{"bid": "1", "ask": "2"}},
		{"update", msg(TypeUpdate, "A", 5, "bid", "1.5"), FieldValues{"bid": "1.5"}, nil, FieldValues{"bid": "1.5", "ask": "2"}},
		{"older update ignored", msg(TypeUpdate, "A", 4, "bid", "9"), nil, nil, FieldValues{"bid": "1.5", "ask": "2"}},
		{"same snapshot again: nothing changed", msg(TypeSnapshot, "A", 5, "bid", "1.5", "ask", "2"), nil, nil, FieldValues{"bid": "1.5", "ask": "2"}},
		{"snapshot after a restart (lower seq) replaces", msg(TypeSnapshot, "A", 1, "bid", "1.5", "last", "7"), FieldValues{"last": "7"}, []string{"ask"}, FieldValues{"bid": "1.5", "last": "7"}},
	}
	for _, st := range steps {
		ch := b.apply(st.m, now)
		switch {
		case st.changed == nil && ch != nil:
			t.Errorf("%s: change %+v, want none", st.name, ch)
		case st.changed != nil && (ch == nil || !maps.Equal(ch.Fields, st.changed) || !slices.Equal(ch.Removed, st.removed)):
			t.Errorf("%s: change %+v, want fields %v removed %v", st.name, ch, st.changed, st.removed)
		}
		if q, _ := b.get("A"); !maps.Equal(q.Fields, st.record) {
			t.Errorf("%s: record %v, want %v", st.name, q.Fields, st.record)
		}
	}
}

// TestBookConflates: with nobody taking changes, a symbol keeps one
// pending change holding each field's latest value.
func TestBookConflates(t *testing.T) {
	b := newBook()
	now := time.Now()
	b.apply(msg(TypeSnapshot, "A", 1, "bid", "1", "ask", "2"), now)
	b.apply(msg(TypeSnapshot, "B", 1, "bid", "5"), now)
	for i := range 1000 {
		b.apply(msg(TypeUpdate, "A", uint64(i+2), "bid", strings.Repeat("9", i%5+1)), now)
	}
	b.apply(msg(TypeUpdate, "A", 2000, "last", "3"), now)
	if len(b.pending) != 2 || len(b.order) != 2 {
		t.Fatalf("%d pending changes in order %v", len(b.pending), b.order)
	}
	a, _ := b.next()
	want := FieldValues{"bid": "99999", "ask": "2", "last": "3"}
	if a.Symbol != "A" || a.Seq != 2000 || !a.Snapshot || !maps.Equal(a.Fields, want) {
		t.Errorf("conflated change %+v, want A seq 2000 %v", a, want)
	}
	if bb, _ := b.next(); bb.Symbol != "B" {
		t.Errorf("second change %+v", bb)
	}
	if _, ok := b.next(); ok {
		t.Error("a third change")
	}
	b.apply(msg(TypeUpdate, "B", 2, "bid", "6"), now)
	b.drop([]string{"B"})
	if _, ok := b.next(); ok || len(b.order) != 0 {
		t.Errorf("a dropped symbol's change is still pending: %v", b.order)
	}
}

func TestDecodeFrame(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // types
	}{
		{"one", `{"type":"update","symbol":"A","seq":2,"fields":{"bid":"1"}}`, []string{"update"}},
		{"batch", `[{"type":"subscribed","id":1,"symbols":["A"]},{"type":"snapshot","symbol":"A","seq":1,"fields":{"volume":12}}]`, []string{"subscribed", "snapshot"}},
		{"blank", "  ", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := decodeFrame([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range ms {
				got = append(got, m.Type)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("types %v, want %v", got, tt.want)
			}
		})
	}
	ms, _ := decodeFrame([]byte(`{"type":"update","fields":{"volume":12345,"bid":"1.5","x":null}}`))
	if want := (FieldValues{"volume": "12345", "bid": "1.5"}); !maps.Equal(ms[0].Fields, want) {
		t.Errorf("fields %v, want %v (numbers kept as text)", ms[0].Fields, want)
	}
	if _, err := decodeFrame([]byte(`[{"type":`)); err == nil {
		t.Error("a malformed batch decoded")
	}
}

func TestReadLine(t *testing.T) {
	long := strings.Repeat("x", 100)
	tests := []struct {
		name  string
		in    string
		limit int
		want  []string
		err   bool
	}{
		{"lines", "a\nbb\n", 10, []string{"a", "bb"}, false},
		{"last without newline", "a\nbb", 10, []string{"a", "bb"}, false},
		{"longer than the buffer", long + "\n", 200, []string{long}, false},
		{"over the limit", long + "\n", 50, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tt.in), 16)
			var got []string
			for {
				line, err := readLine(br, tt.limit)
				if err == io.EOF {
					break
				}
				if err != nil {
					if !tt.err {
						t.Fatal(err)
					}
					return
				}
				got = append(got, string(line))
			}
			if tt.err || !slices.Equal(got, tt.want) {
				t.Errorf("lines %q, want %q (error %v)", got, tt.want, tt.err)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	c := &Client{cfg: defaults()}
	c.cfg.backoffMin, c.cfg.backoffMax = 100*time.Millisecond, time.Second
	for n, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		want *= time.Millisecond
		for range 20 {
			if d := c.backoff(n); d < want/2 || d > want {
				t.Errorf("backoff(%d) = %v, want within [%v, %v]", n, d, want/2, want)
			}
		}
	}
}
