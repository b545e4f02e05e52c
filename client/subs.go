package client

import (
	"slices"
	"strconv"
	"strings"
)

// opChunk is the most symbols put in one subscribe op or stream URL.
const opChunk = 500

// subSpec is how a symbol is subscribed.
type subSpec struct {
	fields []string // nil: all
	maxHz  float64  // 0: the server's ceiling
}

func (s subSpec) key() string {
	return strings.Join(s.fields, ",") + "@" + strconv.FormatFloat(s.maxHz, 'g', -1, 64)
}

// group is the symbols subscribed with one spec, in the order they came.
type group struct {
	spec subSpec
	key  string
	syms []string
}

// subscriptions is what the caller asked for: the state every connection
// is brought to. Groups keep their order so that re-subscribing repeats
// the original ops. Not safe for concurrent use (Client.mu guards it).
type subscriptions struct {
	groups []*group
	bySym  map[string]*group
}

func (s *subscriptions) has(sym string) bool { _, ok := s.bySym[sym]; return ok }

func (s *subscriptions) len() int { return len(s.bySym) }

// add subscribes syms with spec, moving those subscribed with another.
func (s *subscriptions) add(syms []string, spec subSpec) {
	if s.bySym == nil {
		s.bySym = make(map[string]*group)
	}
	key := spec.key()
	var g *group
	for _, h := range s.groups {
		if h.key == key {
			g = h
			break
		}
	}
	if g == nil {
		g = &group{spec: spec, key: key}
		s.groups = append(s.groups, g)
	}
	for _, sym := range syms {
		old := s.bySym[sym]
		if old == g {
			continue
		}
		if old != nil {
			s.dropFrom(old, sym)
		}
		s.bySym[sym] = g
		g.syms = append(g.syms, sym)
	}
}

// remove unsubscribes syms; it reports whether any was subscribed.
func (s *subscriptions) remove(syms []string) bool {
	found := false
	for _, sym := range syms {
		if g := s.bySym[sym]; g != nil {
			s.dropFrom(g, sym)
			delete(s.bySym, sym)
			found = true
		}
	}
	return found
}

func (s *subscriptions) dropFrom(g *group, sym string) {
	if i := slices.Index(g.syms, sym); i >= 0 {
		g.syms = slices.Delete(g.syms, i, i+1)
	}
	if len(g.syms) == 0 {
		s.groups = slices.DeleteFunc(s.groups, func(h *group) bool { return h == g })
	}
}

// first returns the symbols and spec for a stream URL: the start of the
// first group.
func (s *subscriptions) first() ([]string, subSpec) {
	if len(s.groups) == 0 {
		return nil, subSpec{}
	}
	g := s.groups[0]
	return slices.Clone(g.syms[:min(len(g.syms), opChunk)]), g.spec
}

// requests returns subscribe requests for every symbol that only selects
// (all if only is nil), in group order, at most opChunk symbols each,
// leaving out those in skip.
func (s *subscriptions) requests(only, skip map[string]bool) []subRequest {
	var out []subRequest
	for _, g := range s.groups {
		var syms []string
		for _, sym := range g.syms {
			if (only == nil || only[sym]) && !skip[sym] {
				syms = append(syms, sym)
			}
		}
		for len(syms) > 0 {
			n := min(len(syms), opChunk)
			out = append(out, subRequest{symbols: syms[:n:n], spec: g.spec})
			syms = syms[n:]
		}
	}
	return out
}
