package cli

import (
	"flag"
	"io"
	"slices"
	"testing"
)

func TestParseInterleaved(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		speed string
		loop  bool
		pos   []string
	}{
		{"flags first", []string{"-speed", "10x", "-loop", "cap.zst"}, "10x", true, []string{"cap.zst"}},
		{"flags after", []string{"cap.zst", "-speed", "10x"}, "10x", false, []string{"cap.zst"}},
		{"mixed", []string{"a", "-loop", "b", "-speed=max", "c"}, "max", true, []string{"a", "b", "c"}},
		{"double dash ends flags", []string{"-loop", "--", "-speed", "x"}, "1x", true, []string{"-speed", "x"}},
		{"none", nil, "1x", false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			speed := fs.String("speed", "1x", "")
			loop := fs.Bool("loop", false, "")
			pos, err := Parse(fs, tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if *speed != tc.speed || *loop != tc.loop || !slices.Equal(pos, tc.pos) {
				t.Fatalf("speed %q loop %v pos %q", *speed, *loop, pos)
			}
		})
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := Parse(fs, []string{"x", "-nope"}); err == nil {
		t.Fatal("an unknown flag after a positional must be an error")
	}
}

func TestApplyEnv(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	hz := fs.Float64("max-hz", 20, "")
	addr := fs.String("addr", ":8080", "")
	feeds := &Repeatable{Values: []string{"sim"}}
	fs.Var(feeds, "feed", "")
	t.Setenv("TICKERD_MAX_HZ", "5")
	t.Setenv("TICKERD_ADDR", "127.0.0.1:1")
	t.Setenv("TICKERD_FEED", "sim, tcp:127.0.0.1:9000")
	if _, err := Parse(fs, []string{"-addr", ":9"}); err != nil {
		t.Fatal(err)
	}
	if err := ApplyEnv(fs, "TICKERD"); err != nil {
		t.Fatal(err)
	}
	if *hz != 5 || *addr != ":9" || !slices.Equal(feeds.Values, []string{"sim", "tcp:127.0.0.1:9000"}) {
		t.Fatalf("hz %v addr %q feeds %q (the command line must win over the environment)", *hz, *addr, feeds.Values)
	}
	t.Setenv("TICKERD_MAX_HZ", "fast")
	fs2 := flag.NewFlagSet("t", flag.ContinueOnError)
	fs2.Float64("max-hz", 20, "")
	if err := ApplyEnv(fs2, "TICKERD"); err == nil {
		t.Fatal("a bad environment value must be an error")
	}
	if got := EnvName("TICKERD", "sim-symbols"); got != "TICKERD_SIM_SYMBOLS" {
		t.Fatal(got)
	}
}
