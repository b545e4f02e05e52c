package entitlements

import (
	"sync"
	"sync/atomic"
	"time"
)

// Store holds the -auth file in force. Reload swaps in a new version
// atomically; a file that does not parse leaves the previous one in force.
// Its methods are safe for concurrent use.
type Store struct {
	path string
	cur  atomic.Pointer[Config]
	mu   sync.Mutex // serializes reloads
}

// Open loads the file at path.
func Open(path string) (*Store, error) {
	c, err := Load(path)
	if err != nil {
		return nil, err
	}
	s := &Store{path: path}
	s.cur.Store(c)
	return s, nil
}

// Path returns the file's path.
func (s *Store) Path() string { return s.path }

// Config returns the configuration in force.
func (s *Store) Config() *Config { return s.cur.Load() }

// Reload reads the file again. On error the previous configuration stays
// in force and the error names the file and line.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := Load(s.path)
	if err != nil {
		return err
	}
	s.cur.Store(c)
	return nil
}

// Authenticate resolves cred against the configuration in force
// (Config.Authenticate).
func (s *Store) Authenticate(cred string, now time.Time) (*Principal, error) {
	return s.cur.Load().Authenticate(cred, now)
}

// HasDelayed reports whether any group of the configuration in force
// grants a delayed tier.
func (s *Store) HasDelayed() bool {
	for _, g := range s.cur.Load().Groups {
		if !g.delayed.empty() {
			return true
		}
	}
	return false
}
