package entitlements

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sample = `groups:
  us-rt:   {realtime: ["AAPL", "MSFT", "US.*"]}
  nyse-dl: {delayed: ["IBM", "NYSE.*", "AAPL"]}
  all-dl:  {delayed: ["*"]}
users:
  - name: alice
    keys: ["k-alice-1"]
    groups: [us-rt, nyse-dl]
    limits: {connections: 5, symbols: 500, maxHz: 10}
  - name: bob
    keys: ["k-bob-0001", "k-bob-0002"]
    groups: [all-dl]
jwt:
  hs256Secret: "change-me-please-now"
  audience: tickerd
`

func TestParseAndTiers(t *testing.T) {
	c, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	alice, ok := c.UserByKey("k-alice-1")
	if !ok || alice.Name != "alice" || alice.Limits != (Limits{Connections: 5, Symbols: 500, MaxHz: 10}) {
		t.Fatalf("alice: %+v %v", alice, ok)
	}
	for sym, want := range map[string]Tier{
		"AAPL":      Realtime, // realtime wins over delayed
		"MSFT":      Realtime,
		"US.ACME":   Realtime,
		"US.AAPL.X": Realtime, // * crosses dots
		"US":        None,
		"IBM":       Delayed,
		"NYSE.GE":   Delayed,
		"GOOG":      None,
	} {
		if got := alice.Tier(sym); got != want {
			t.Errorf("alice %s: %v, want %v", sym, got, want)
		}
	}
	bob, _ := c.UserByKey("k-bob-0002")
	if bob == nil || bob.Tier("ANYTHING") != Delayed {
		t.Errorf("bob: %+v", bob)
	}
	if _, ok := c.UserByKey("k-nobody-1"); ok {
		t.Error("an unknown key found a user")
	}
	if c.JWT == nil || string(c.JWT.HS256Secret) != "change-me-please-now" || c.JWT.Audience != "tickerd" || c.JWT.GroupsClaim != "groups" {
		t.Errorf("jwt: %+v", c.JWT)
	}
	if gs := c.GroupsNamed([]string{"us-rt", "nope", "us-rt"}); len(gs) != 1 || gs[0].Name != "us-rt" {
		t.Errorf("GroupsNamed: %v", gs)
	}
}

func TestGlobEdges(t *testing.T) {
	for _, tc := range []struct {
		pattern, sym string
		want         bool
	}{
		{"AAP*", "AAPL", true},
		{"AAP*", "AAPL.X", true}, // * matches any run, dots included
		{"AAP?", "AAPL", true},
		{"AAP?", "AAPL.X", false}, // ? is exactly one character
		{"AAP?", "AAP", false},
		{"AAPL", "AAPL.X", false},
		{"*.X", "AAPL.X", true},
		{"*.X", "AAPL.XY", false},
		{"A*B*C", "AXXBYYC", true},
		{"A*B*C", "AXXBYY", false},
		{"**", "", true},
		{"*", "Z", true},
	} {
		p, err := compile([]string{tc.pattern})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.match(tc.sym); got != tc.want {
			t.Errorf("%q matches %q: %v, want %v", tc.pattern, tc.sym, got, tc.want)
		}
	}
}

// Bad files get errors naming the line of the mistake; nothing is half
// loaded.
func TestParseErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct {
		name, file, want string
	}{
		{"unknown group", "groups:\n  a: {realtime: [X]}\nusers:\n  - name: u\n    keys: [k-0000001]\n    groups: [b]\n", "line 6: user u: unknown group \"b\""},
		{"bad pattern", "groups:\n  a: {realtime: [aapl]}\n", "line 2: group a: pattern \"aapl\""},
		{"empty group", "groups:\n  a: {}\n", "line 2: group a grants nothing"},
		{"duplicate key", "groups:\n  a: {realtime: [X]}\nusers:\n  - name: u\n    keys: [k-0000001]\n    groups: [a]\n  - name: v\n    keys: [k-0000001]\n    groups: [a]\n", "line 8: user v: a key is also u's"},
		{"short key", "groups:\n  a: {realtime: [X]}\nusers:\n  - name: u\n    keys: [k]\n", "line 5: user u: a key must be at least 8"},
		{"duplicate user", "groups:\n  a: {realtime: [X]}\nusers:\n  - name: u\n  - name: u\n", "line 5: user u appears twice"},
		{"negative limit", "groups:\n  a: {realtime: [X]}\nusers:\n  - name: u\n    limits: {symbols: -1}\n", "line 5: user u: limits must not be negative"},
		{"unknown field", "groups:\n  a: {realtime: [X], live: [Y]}\n", "line 2: field live not found"},
		{"no user name", "users:\n  - keys: [k-0000001]\n", "line 2: user 1 has no name"},
		{"two jwt keys", "jwt:\n  hs256Secret: 0123456789abcdef\n  rs256PublicKey: key.pem\n", "jwt: give exactly one of"},
		{"short secret", "jwt:\n  hs256Secret: short\n", "line 2: jwt: hs256Secret must be at least 16 bytes"},
		{"missing key file", "jwt:\n  rs256PublicKey: /nonexistent/key.pem\n", "line 2: jwt: rs256PublicKey:"},
		{"not yaml", "groups: [\n", "entitlements: yaml:"},
		{"empty", "", "empty file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadReadsKeyFilesBesideIt(t *testing.T) {
	dir := t.TempDir()
	_, pem := ecKey(t)
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), []byte(pem), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "auth.yaml")
	if err := os.WriteFile(path, []byte("jwt:\n  es256PublicKey: key.pem\n  audience: tickerd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(c.JWT.ES256PublicKey) != string(pem) {
		t.Errorf("key %q", c.JWT.ES256PublicKey)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("a missing file loaded")
	}
}

// FuzzParse: whatever the file, Parse returns a config or an error; it
// never panics, and a config it returns answers lookups.
func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte("groups:\n  a: {realtime: [\"*\"]}\n"))
	f.Add([]byte("users:\n  - name: u\n    groups: [a]\n"))
	f.Add([]byte("jwt: {hs256Secret: 0123456789abcdef, audience: [a, b]}\n"))
	f.Add([]byte("groups: &a {x: *a}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parse(data, func(string) ([]byte, error) { return []byte("pem"), nil })
		if err != nil {
			return
		}
		for _, u := range c.Users {
			_ = u.Tier("AAPL.X")
		}
	})
}
