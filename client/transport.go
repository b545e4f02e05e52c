package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// conn is one live connection of a transport. read is called from one
// goroutine at a time; op and close may be called from any.
type conn interface {
	// read blocks for the next frame, line, event or poll reply and
	// returns its messages (possibly none).
	read() ([]Message, error)
	// op sends one client op. WebSocket writes a frame and returns no
	// replies (they come on the stream); the HTTP transports POST it to
	// the session and return the reply's messages.
	op(ctx context.Context, body []byte) ([]Message, error)
	// close ends the connection and unblocks read. Safe to call twice.
	close()
	transport() Transport
}

// target is what a connection is opened for.
type target struct {
	symbols     []string // subscribed in the URL
	spec        subSpec  // of symbols
	resume      string   // resume token; "" for a new session
	lastEventID string   // SSE: the last event id of the session, if any
}

// streamURL returns the URL of a streaming GET of path with the query
// parameters of tg.
func (c *Client) streamURL(path string, tg target, extra url.Values) string {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	q := url.Values{}
	if len(tg.symbols) > 0 {
		q.Set("symbols", strings.Join(tg.symbols, ","))
		if len(tg.spec.fields) > 0 {
			q.Set("fields", strings.Join(tg.spec.fields, ","))
		}
		if tg.spec.maxHz > 0 {
			q.Set("maxHz", strconv.FormatFloat(tg.spec.maxHz, 'f', -1, 64))
		}
	}
	if tg.resume != "" && tg.lastEventID == "" {
		q.Set("resume", tg.resume)
	}
	if c.cfg.token != "" && c.cfg.tokenInQuery {
		q.Set("token", c.cfg.token)
	}
	for k, v := range extra {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// endpoint returns the URL of path with no query.
func (c *Client) endpoint(path string) string {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = ""
	return u.String()
}

// authorize adds the bearer header unless the token goes in the query.
func (c *Client) authorize(h http.Header, query bool) {
	if c.cfg.token != "" && !(query && c.cfg.tokenInQuery) {
		h.Set("Authorization", "Bearer "+c.cfg.token)
	}
}

// get sends a GET and returns a 200 response or an *HTTPError.
func (c *Client) get(ctx context.Context, rawURL string, h http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	c.authorize(req.Header, true)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: GET %s: %w", redact(req.URL), err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, httpError(redact(req.URL), resp)
	}
	return resp, nil
}

// postOp sends an op to session and returns the messages of the reply.
func (c *Client) postOp(ctx context.Context, session string, body []byte) ([]Message, error) {
	u := c.endpoint("/v1/sessions/" + url.PathEscape(session))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	c.authorize(req.Header, false)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: POST %s: %w", u, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, errSessionGone
	default:
		return nil, httpError(redact(req.URL), resp)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, int64(c.cfg.maxMessage)))
	if err != nil {
		return nil, fmt.Errorf("client: POST %s: %w", u, err)
	}
	return decodeFrame(b)
}

func httpError(u string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	msg := strings.TrimSpace(string(b))
	var j struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &j) == nil && j.Error != "" {
		msg = j.Error
	}
	return &HTTPError{URL: u, Status: resp.StatusCode, Body: msg}
}

// redact returns u without its query, which may hold a token.
func redact(u *url.URL) string {
	v := *u
	v.RawQuery, v.User = "", nil
	return v.String()
}

// isStatus reports whether err is an *HTTPError with that status.
func isStatus(err error, status int) bool {
	var he *HTTPError
	return errors.As(err, &he) && he.Status == status
}
