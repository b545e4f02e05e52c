// Package cli holds the flag conventions shared by tickerd's binaries:
// flags before or after positional arguments, and flags from the
// environment. It never defines flags itself.
package cli

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// Parse parses args with fs, allowing flags before and after positional
// arguments ("replay cap.zst -speed 10x" and "replay -speed 10x cap.zst"
// are the same), and returns the positionals in order. A lone "--" ends
// flag parsing.
func Parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// Repeatable is a flag that may be given several times; from the
// environment it takes a comma-separated list.
type Repeatable struct {
	Values []string
	set    bool
}

func (r *Repeatable) String() string { return strings.Join(r.Values, ",") }

// Set adds one value; the first explicit value replaces the defaults.
func (r *Repeatable) Set(v string) error {
	if !r.set {
		r.Values, r.set = nil, true
	}
	r.Values = append(r.Values, v)
	return nil
}

// EnvName returns the environment variable of flag name under prefix:
// EnvName("TICKERD", "max-hz") is "TICKERD_MAX_HZ".
func EnvName(prefix, name string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// ApplyEnv sets every flag of fs that was not given on the command line
// from its environment variable (see EnvName), if that is set. A
// Repeatable flag splits the variable on commas. Errors name the variable.
func ApplyEnv(fs *flag.FlagSet, prefix string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] {
			return
		}
		env := EnvName(prefix, f.Name)
		v, ok := os.LookupEnv(env)
		if !ok {
			return
		}
		vals := []string{v}
		if _, rep := f.Value.(*Repeatable); rep {
			vals = strings.Split(v, ",")
		}
		for _, one := range vals {
			if e := f.Value.Set(strings.TrimSpace(one)); e != nil {
				err = fmt.Errorf("invalid value %q for %s: %v", v, env, e)
				return
			}
		}
	})
	return err
}

// SplitList splits a comma-separated value (a flag, an environment
// variable), trimming blanks and dropping empty items.
func SplitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
