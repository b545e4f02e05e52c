package entitlements

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func ecKey(t testing.TB) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return k, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func sign(t testing.TB, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const hsFile = `groups:
  us-rt: {realtime: ["AAPL", "US.*"]}
  dl:    {delayed: ["*"]}
users:
  - name: alice
    keys: ["k-alice-1"]
    groups: [us-rt]
  - name: carol
    limits: {symbols: 7}
jwt:
  hs256Secret: "0123456789abcdef-secret"
  audience: tickerd
`

// A table of attacks on the credential: each must name nobody.
func TestAuthenticate(t *testing.T) {
	c, err := Parse([]byte(hsFile))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	secret := []byte("0123456789abcdef-secret")
	good := jwt.MapClaims{"sub": "carol", "aud": "tickerd", "exp": now.Add(time.Hour).Unix(), "groups": []any{"dl", "nope"}}
	with := func(k string, v any) jwt.MapClaims {
		m := jwt.MapClaims{}
		for a, b := range good {
			m[a] = b
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	// alg:none, hand made.
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good)
	// A forged signature: the right header and claims, another secret.
	forged := sign(t, jwt.SigningMethodHS256, []byte("another-secret-of-16b"), good)
	// An ES256 token where HS256 is configured.
	ec, _ := ecKey(t)
	otherAlg := sign(t, jwt.SigningMethodES256, ec, good)

	p, err := c.Authenticate(sign(t, jwt.SigningMethodHS256, secret, good), now)
	if err != nil {
		t.Fatalf("a good token: %v", err)
	}
	if p.Name != "carol" || p.APIKey || p.Tier("IBM") != Delayed || p.Tier("AAPL") != Delayed || p.Limits.Symbols != 7 {
		t.Errorf("token principal %+v", p)
	}
	if p, err := c.Authenticate("k-alice-1", now); err != nil || p.Name != "alice" || !p.APIKey || p.Tier("US.X") != Realtime || p.Tier("IBM") != None {
		t.Errorf("API key: %+v %v", p, err)
	}
	for name, cred := range map[string]string{
		"unknown key":       "k-mallory-1",
		"empty":             "",
		"garbage":           "not.a.token",
		"alg none":          none,
		"forged":            forged,
		"other algorithm":   otherAlg,
		"expired":           sign(t, jwt.SigningMethodHS256, secret, with("exp", now.Add(-time.Hour).Unix())),
		"no exp":            sign(t, jwt.SigningMethodHS256, secret, with("exp", nil)),
		"not yet valid":     sign(t, jwt.SigningMethodHS256, secret, with("nbf", now.Add(time.Hour).Unix())),
		"wrong audience":    sign(t, jwt.SigningMethodHS256, secret, with("aud", "someone-else")),
		"no audience":       sign(t, jwt.SigningMethodHS256, secret, with("aud", nil)),
		"no sub":            sign(t, jwt.SigningMethodHS256, secret, with("sub", nil)),
		"key with a suffix": "k-alice-1x",
	} {
		p, err := c.Authenticate(cred, now)
		if !errors.Is(err, ErrBadCredential) || p != nil {
			t.Errorf("%s: principal %+v, error %v; want ErrBadCredential", name, p, err)
		}
		if err != nil && len(cred) > 12 && strings.Contains(err.Error(), cred) {
			t.Errorf("%s: the error repeats the credential", name)
		}
	}
	// aud as a list that contains ours is fine; groups as one string too.
	if p, err := c.Authenticate(sign(t, jwt.SigningMethodHS256, secret, with("aud", []any{"x", "tickerd"})), now); err != nil || p == nil {
		t.Errorf("aud list: %v", err)
	}
	if p, err := c.Authenticate(sign(t, jwt.SigningMethodHS256, secret, with("groups", "us-rt")), now); err != nil || p.Tier("US.Y") != Realtime {
		t.Errorf("groups as a string: %+v %v", p, err)
	}
}

func TestAuthenticatePublicKeys(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	claims := jwt.MapClaims{"sub": "dave", "exp": now.Add(time.Minute).Unix(), "groups": []any{"g"}}
	ec, ecPEM := ecKey(t)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	for _, tc := range []struct {
		name, field string
		keyPEM      []byte
		good        string
		bad         []string
	}{
		{"es256", "es256PublicKey", ecPEM, sign(t, jwt.SigningMethodES256, ec, claims), []string{
			sign(t, jwt.SigningMethodHS256, ecPEM, claims), // the public key used as an HMAC secret
			sign(t, jwt.SigningMethodRS256, rk, claims),
		}},
		{"rs256", "rs256PublicKey", rsaPEM, sign(t, jwt.SigningMethodRS256, rk, claims), []string{
			sign(t, jwt.SigningMethodHS256, rsaPEM, claims),
			sign(t, jwt.SigningMethodES256, ec, claims),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := "groups: {g: {realtime: [\"*\"]}}\njwt:\n  " + tc.field + ": key.pem\n"
			c, err := parse([]byte(file), func(string) ([]byte, error) { return tc.keyPEM, nil })
			if err != nil {
				t.Fatal(err)
			}
			if p, err := c.Authenticate(tc.good, now); err != nil || p.Name != "dave" || p.Tier("X") != Realtime {
				t.Fatalf("good token: %+v %v", p, err)
			}
			for i, b := range tc.bad {
				if _, err := c.Authenticate(b, now); !errors.Is(err, ErrBadCredential) {
					t.Errorf("bad token %d accepted: %v", i, err)
				}
			}
		})
	}
	if _, err := parse([]byte("jwt:\n  rs256PublicKey: key.pem\n"), func(string) ([]byte, error) { return []byte("not a key"), nil }); err == nil ||
		!strings.Contains(err.Error(), "line 2: jwt: rs256PublicKey") {
		t.Errorf("a bad key file: %v", err)
	}
}
