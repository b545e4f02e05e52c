// Package entitlements decides who may see which symbols, and how: in
// realtime, delayed, or not at all. It reads the -auth file of the contract:
//
//	groups:
//	  us-rt:   {realtime: ["AAPL", "MSFT", "US.*"]}
//	  nyse-dl: {delayed: ["IBM", "NYSE.*"]}
//	users:
//	  - name: alice
//	    keys: ["k-alice-1"]
//	    groups: [us-rt, nyse-dl]
//	    limits: {connections: 5, symbols: 500, maxHz: 10}
//	jwt:
//	  hs256Secret: "change-me"
//	  audience: tickerd
//	  groupsClaim: groups
//
// A symbol matched by both a realtime and a delayed pattern of a user's
// groups is realtime. Errors name the file's line.
package entitlements

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Tier is how a user may see a symbol.
type Tier uint8

const (
	None     Tier = iota // not at all: not_entitled
	Delayed              // as it was -delay ago
	Realtime             // live
)

func (t Tier) String() string {
	return [...]string{None: "none", Delayed: "delayed", Realtime: "realtime"}[t]
}

// Limits bound what one user may use; a zero field means no limit of the
// user's own (the server's flags still apply).
type Limits struct {
	Connections int     `yaml:"connections"` // open sessions at once
	Symbols     int     `yaml:"symbols"`     // subscriptions per session
	MaxHz       float64 `yaml:"maxHz"`       // messages per symbol per second
	BytesPerSec int64   `yaml:"bytesPerSec"` // per session (an extension of the contract's file)
}

// Group is a named set of symbol patterns, each with its tier.
type Group struct {
	Name     string
	realtime patterns
	delayed  patterns
}

// Tier returns how the group grants sym.
func (g *Group) Tier(sym string) Tier {
	switch {
	case g.realtime.match(sym):
		return Realtime
	case g.delayed.match(sym):
		return Delayed
	}
	return None
}

// User is one user of the file.
type User struct {
	Name   string
	Groups []*Group
	Limits Limits
}

// Tier returns the best tier any of the user's groups grants sym.
func (u *User) Tier(sym string) Tier { return bestTier(u.Groups, sym) }

// JWT is how bearer tokens that are not API keys are checked.
type JWT struct {
	HS256Secret     []byte // shared secret, or
	RS256PublicKey  []byte // PEM, read from the file named in the config, or
	ES256PublicKey  []byte // PEM
	Audience        string // the token's aud must be, or contain, this (empty: not checked)
	GroupsClaim     string // the claim naming the token's groups (default "groups")
	PublicKeyOrigin string // the key file's path, for messages

	method string // the one signing algorithm accepted
	key    any    // its verification key
}

// Config is a parsed -auth file.
type Config struct {
	Groups map[string]*Group
	Users  []*User
	JWT    *JWT // nil: API keys only
	byKey  map[string]*User
}

// UserByKey returns the user holding API key key.
func (c *Config) UserByKey(key string) (*User, bool) { return c.userByKey(key) }

// GroupsNamed returns the groups of names (a token's groups claim),
// leaving out names the file does not define.
func (c *Config) GroupsNamed(names []string) []*Group {
	var gs []*Group
	for _, n := range names {
		if g, ok := c.Groups[n]; ok && !slices.Contains(gs, g) {
			gs = append(gs, g)
		}
	}
	return gs
}

// The file's shape, as YAML decodes it.
type fileGroup struct {
	Realtime []string `yaml:"realtime"`
	Delayed  []string `yaml:"delayed"`
}

type fileUser struct {
	Name   string   `yaml:"name"`
	Keys   []string `yaml:"keys"`
	Groups []string `yaml:"groups"`
	Limits Limits   `yaml:"limits"`
}

type fileJWT struct {
	HS256Secret    string `yaml:"hs256Secret"`
	RS256PublicKey string `yaml:"rs256PublicKey"`
	ES256PublicKey string `yaml:"es256PublicKey"`
	Audience       string `yaml:"audience"`
	GroupsClaim    string `yaml:"groupsClaim"`
}

type file struct {
	Groups map[string]fileGroup `yaml:"groups"`
	Users  []fileUser           `yaml:"users"`
	JWT    *fileJWT             `yaml:"jwt"`
}

// MaxFileSize bounds the -auth file.
const MaxFileSize = 8 << 20

// Load reads and parses the -auth file at path. Key files named in it are
// read relative to its directory.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("entitlements: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("entitlements: %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("entitlements: %s: larger than %d bytes", path, MaxFileSize)
	}
	c, err := parse(data, func(name string) ([]byte, error) {
		if !filepath.IsAbs(name) {
			name = filepath.Join(filepath.Dir(path), name)
		}
		return os.ReadFile(name)
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse parses an -auth file's contents; a key file it names is read from
// the working directory.
func Parse(data []byte) (*Config, error) { return parse(data, os.ReadFile) }

// lineError is an error at a line of the file.
type lineError struct {
	line int
	msg  string
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

func errAt(n *yaml.Node, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &lineError{line, fmt.Sprintf(format, args...)}
}

func parse(data []byte, readFile func(string) ([]byte, error)) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("entitlements: empty file")
		}
		return nil, fmt.Errorf("entitlements: %w", err)
	}
	var f file
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(&f); err != nil {
		return nil, fmt.Errorf("entitlements: %w", err)
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	c := &Config{Groups: map[string]*Group{}, byKey: map[string]*User{}}
	var errs []error
	bad := func(err error) { errs = append(errs, err) }

	groupsNode := child(doc, "groups")
	for name, fg := range f.Groups {
		gn := child(groupsNode, name)
		if name == "" {
			bad(errAt(gn, "a group needs a name"))
			continue
		}
		g := &Group{Name: name}
		var err error
		if g.realtime, err = compile(fg.Realtime); err != nil {
			bad(errAt(child(gn, "realtime"), "group %s: %v", name, err))
		}
		if g.delayed, err = compile(fg.Delayed); err != nil {
			bad(errAt(child(gn, "delayed"), "group %s: %v", name, err))
		}
		if len(fg.Realtime)+len(fg.Delayed) == 0 {
			bad(errAt(gn, "group %s grants nothing (give it realtime or delayed patterns)", name))
		}
		c.Groups[name] = g
	}

	usersNode := child(doc, "users")
	names := map[string]bool{}
	for i, fu := range f.Users {
		un := item(usersNode, i)
		if fu.Name == "" {
			bad(errAt(un, "user %d has no name", i+1))
			continue
		}
		if names[fu.Name] {
			bad(errAt(un, "user %s appears twice", fu.Name))
		}
		names[fu.Name] = true
		u := &User{Name: fu.Name, Limits: fu.Limits}
		for _, gname := range fu.Groups {
			g, ok := c.Groups[gname]
			if !ok {
				bad(errAt(child(un, "groups"), "user %s: unknown group %q", fu.Name, gname))
				continue
			}
			u.Groups = append(u.Groups, g)
		}
		if l := fu.Limits; l.Connections < 0 || l.Symbols < 0 || l.MaxHz < 0 || l.BytesPerSec < 0 {
			bad(errAt(child(un, "limits"), "user %s: limits must not be negative", fu.Name))
		}
		for _, k := range fu.Keys {
			switch {
			case len(k) < 8 || strings.TrimSpace(k) != k:
				bad(errAt(child(un, "keys"), "user %s: a key must be at least 8 characters, without surrounding spaces", fu.Name))
			case c.byKey[k] != nil:
				bad(errAt(child(un, "keys"), "user %s: a key is also %s's", fu.Name, c.byKey[k].Name))
			default:
				c.byKey[k] = u
			}
		}
		c.Users = append(c.Users, u)
	}

	if fj := f.JWT; fj != nil {
		jn := child(doc, "jwt")
		j := &JWT{Audience: fj.Audience, GroupsClaim: fj.GroupsClaim}
		if j.GroupsClaim == "" {
			j.GroupsClaim = "groups"
		}
		set := 0
		if fj.HS256Secret != "" {
			set++
			j.HS256Secret = []byte(fj.HS256Secret)
			if len(fj.HS256Secret) < 16 {
				bad(errAt(child(jn, "hs256Secret"), "jwt: hs256Secret must be at least 16 bytes"))
			}
		}
		for _, k := range []struct {
			name, path string
			dst        *[]byte
		}{{"rs256PublicKey", fj.RS256PublicKey, &j.RS256PublicKey}, {"es256PublicKey", fj.ES256PublicKey, &j.ES256PublicKey}} {
			if k.path == "" {
				continue
			}
			set++
			pem, err := readFile(k.path)
			if err != nil {
				bad(errAt(child(jn, k.name), "jwt: %s: %v", k.name, err))
				continue
			}
			*k.dst, j.PublicKeyOrigin = pem, k.path
		}
		if set != 1 {
			bad(errAt(jn, "jwt: give exactly one of hs256Secret, rs256PublicKey, es256PublicKey"))
		} else if err := j.prepare(); err != nil {
			bad(errAt(jn, "jwt: %v", err))
		}
		c.JWT = j
	}
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b error) int { return lineOf(a) - lineOf(b) })
		return nil, fmt.Errorf("entitlements: %w", errors.Join(errs...))
	}
	return c, nil
}

func lineOf(err error) int {
	var le *lineError
	if errors.As(err, &le) {
		return le.line
	}
	return 0
}

// child returns the value node of key in mapping n, or n itself when there
// is none (the nearest line is better than no line).
func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return n
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return n
}

// item returns element i of sequence n, or n.
func item(n *yaml.Node, i int) *yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode || i >= len(n.Content) {
		return n
	}
	return n.Content[i]
}
