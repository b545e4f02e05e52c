package entitlements

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Principal is who a credential names, and what it may see.
type Principal struct {
	Name   string // the user's name, or the token's sub
	Groups []*Group
	Limits Limits
	APIKey bool // named by an API key of the file, not a token
	// Expires is the token's exp (zero for API keys): the server ends the
	// principal's sessions then, unless the client sends a fresher token.
	Expires time.Time
}

// Tier returns the best tier any of the principal's groups grants sym
// (realtime wins over delayed).
func (p *Principal) Tier(sym string) Tier { return bestTier(p.Groups, sym) }

func bestTier(groups []*Group, sym string) Tier {
	best := None
	for _, g := range groups {
		best = max(best, g.Tier(sym))
		if best == Realtime {
			break
		}
	}
	return best
}

// ErrBadCredential is a credential that names nobody: an unknown key, or a
// token that is malformed, forged, expired, not yet valid, for another
// audience, or signed with another algorithm than the file's.
var ErrBadCredential = errors.New("entitlements: bad credential")

// ErrExpired is a token past its exp (it also wraps ErrBadCredential).
var ErrExpired = errors.New("token expired")

// jwtLeeway is the clock skew tolerated on exp and nbf.
const jwtLeeway = 30 * time.Second

// Authenticate returns the principal of a bearer credential at now: an API
// key of the file, or else a JWT checked as the file's jwt section says
// (signature with the one configured algorithm, exp required, nbf, aud).
// Errors wrap ErrBadCredential and say why, without the credential.
func (c *Config) Authenticate(cred string, now time.Time) (*Principal, error) {
	if u, ok := c.userByKey(cred); ok {
		return &Principal{Name: u.Name, Groups: u.Groups, Limits: u.Limits, APIKey: true}, nil
	}
	if c.JWT == nil {
		return nil, fmt.Errorf("%w: unknown API key", ErrBadCredential)
	}
	j := c.JWT
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{j.method}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(jwtLeeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
	}
	if j.Audience != "" {
		opts = append(opts, jwt.WithAudience(j.Audience))
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(cred, claims, func(*jwt.Token) (any, error) { return j.key, nil }, opts...)
	if errors.Is(err, jwt.ErrTokenExpired) {
		return nil, fmt.Errorf("%w: %w", ErrBadCredential, ErrExpired)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: token: %v", ErrBadCredential, err)
	}
	sub, _ := claims["sub"].(string)
	if sub == "" {
		return nil, fmt.Errorf("%w: token has no sub", ErrBadCredential)
	}
	var names []string
	switch v := claims[j.GroupsClaim].(type) {
	case string:
		names = []string{v}
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok {
				names = append(names, s)
			}
		}
	}
	p := &Principal{Name: sub, Groups: c.GroupsNamed(names)}
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		p.Expires = exp.Add(jwtLeeway)
	}
	if u := c.userNamed(sub); u != nil {
		p.Limits = u.Limits // a user of the file with the token's sub sets its limits
	}
	return p, nil
}

// userByKey finds the user holding key, comparing in constant time per
// key so that a response's timing says nothing of near misses.
func (c *Config) userByKey(key string) (*User, bool) {
	var found *User
	for k, u := range c.byKey {
		if subtle.ConstantTimeCompare([]byte(k), []byte(key)) == 1 {
			found = u
		}
	}
	return found, found != nil
}

func (c *Config) userNamed(name string) *User {
	for _, u := range c.Users {
		if u.Name == name {
			return u
		}
	}
	return nil
}

// prepare parses the jwt section's key into what the parser needs.
func (j *JWT) prepare() error {
	var err error
	switch {
	case j.HS256Secret != nil:
		j.method, j.key = jwt.SigningMethodHS256.Alg(), j.HS256Secret
	case j.RS256PublicKey != nil:
		j.method = jwt.SigningMethodRS256.Alg()
		if j.key, err = jwt.ParseRSAPublicKeyFromPEM(j.RS256PublicKey); err != nil {
			return fmt.Errorf("rs256PublicKey %s: %v", j.PublicKeyOrigin, err)
		}
	case j.ES256PublicKey != nil:
		j.method = jwt.SigningMethodES256.Alg()
		if j.key, err = jwt.ParseECPublicKeyFromPEM(j.ES256PublicKey); err != nil {
			return fmt.Errorf("es256PublicKey %s: %v", j.PublicKeyOrigin, err)
		}
	}
	return nil
}
