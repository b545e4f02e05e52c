package stream

import (
	"testing"
	"time"
)

func TestPacerFollowsLag(t *testing.T) {
	p := newPacer(DefaultPacingMaxGap)
	// Writers woken 5 ms late, period after period: the gap settles at
	// pacerGain × 5 ms.
	now := int64(0)
	for range 100 {
		now += int64(pacerPeriod)
		p.observe(now-int64(5*time.Millisecond), now)
	}
	if got, want := p.Gap(), pacerGain*5*time.Millisecond; got < want*9/10 || got > want {
		t.Fatalf("gap %v after a steady 5 ms lag; want about %v", got, want)
	}
	// A huge lag is capped.
	for range 100 {
		now += int64(pacerPeriod)
		p.observe(now-int64(time.Second), now)
	}
	if got := p.Gap(); got != DefaultPacingMaxGap {
		t.Fatalf("gap %v after a 1 s lag; want the cap %v", got, DefaultPacingMaxGap)
	}
	// A quiet spell (one observation after two seconds) brings it to zero.
	now += int64(2 * time.Second)
	p.observe(now-int64(10*time.Microsecond), now)
	if got := p.Gap(); got != 0 {
		t.Fatalf("gap %v after 2 s without lag; want 0", got)
	}
	// Within one period nothing moves.
	p.observe(now-int64(time.Second), now+1)
	if got := p.Gap(); got != 0 {
		t.Fatalf("gap moved within a period: %v", got)
	}
}

func TestPacerOff(t *testing.T) {
	p := newPacer(0)
	now := int64(0)
	for range 50 {
		now += int64(pacerPeriod)
		p.observe(now-int64(time.Second), now)
	}
	if got := p.Gap(); got != 0 {
		t.Fatalf("pacing off, gap %v", got)
	}
}

// Without a readable send queue, a session judges its client by write
// time: a blocked write widens the gap, quick writes halve it away.
func TestDrainByWriteTime(t *testing.T) {
	var d drain
	now := time.Unix(0, 0)
	if g := d.wrote(now, 1000, time.Millisecond); g != 0 {
		t.Fatalf("quick write: gap %v, want 0", g)
	}
	g := d.wrote(now, 1000, 100*time.Millisecond)
	if g < 200*time.Millisecond {
		t.Fatalf("a write blocked 100 ms: gap %v, want ≥ 200 ms", g)
	}
	for i := 0; g > 0; i++ {
		if i > 10 {
			t.Fatalf("gap %v does not go away after quick writes", g)
		}
		g = d.wrote(now, 1000, time.Millisecond)
	}
}
