package entitlements

import (
	"fmt"
	"strings"
)

// patterns is a compiled list of symbol patterns: exact names in a set,
// globs in a list. In a glob, * matches any run of characters (dots
// included, so "US.*" matches "US.AAPL.X") and ? exactly one.
type patterns struct {
	exact map[string]bool
	globs []string
	all   bool // "*": every symbol
}

// empty reports whether the list matches nothing.
func (p *patterns) empty() bool { return !p.all && len(p.exact) == 0 && len(p.globs) == 0 }

// maxPatternLen bounds a pattern (a symbol is at most 32 characters).
const maxPatternLen = 64

func compile(list []string) (patterns, error) {
	var p patterns
	for _, s := range list {
		if err := checkPattern(s); err != nil {
			return patterns{}, err
		}
		switch {
		case strings.Trim(s, "*") == "":
			p.all = true
		case !strings.ContainsAny(s, "*?"):
			if p.exact == nil {
				p.exact = map[string]bool{}
			}
			p.exact[s] = true
		default:
			p.globs = append(p.globs, s)
		}
	}
	return p, nil
}

// checkPattern accepts the characters of a symbol plus * and ?.
func checkPattern(s string) error {
	if s == "" || len(s) > maxPatternLen {
		return fmt.Errorf("pattern %q: want 1 to %d characters", s, maxPatternLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strings.IndexByte("._:-*?", c) >= 0 {
			continue
		}
		return fmt.Errorf("pattern %q: %q is not allowed (symbols are upper case: A-Z 0-9 . _ : -; wildcards * and ?)", s, c)
	}
	return nil
}

func (p *patterns) match(sym string) bool {
	if p.all || p.exact[sym] {
		return true
	}
	for _, g := range p.globs {
		if glob(g, sym) {
			return true
		}
	}
	return false
}

// glob reports whether s matches pattern g: linear time, backtracking only
// to the last star.
func glob(g, s string) bool {
	gi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case gi < len(g) && (g[gi] == '?' || g[gi] == s[si]):
			gi++
			si++
		case gi < len(g) && g[gi] == '*':
			star, mark = gi, si
			gi++
		case star >= 0:
			gi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for gi < len(g) && g[gi] == '*' {
		gi++
	}
	return gi == len(g)
}
