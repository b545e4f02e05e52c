package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
)

// FetchSymbols returns the symbols of GET /v1/symbols: those that hold
// data (and that the credential is entitled to). Of the options, those of
// the HTTP client, token and logger apply.
func FetchSymbols(ctx context.Context, baseURL string, opts ...Option) ([]string, error) {
	c, err := newClient(baseURL, opts)
	if err != nil {
		return nil, err
	}
	defer c.release()
	var reply struct {
		Symbols []string `json:"symbols"`
	}
	if err := c.getJSON(ctx, "/v1/symbols", nil, &reply); err != nil {
		return nil, err
	}
	return reply.Symbols, nil
}

// FetchSnapshot returns the server's current records of symbols (all
// symbols if none are named) from GET /v1/snapshot, keyed by symbol.
// Symbols the server cannot serve (no data yet, malformed) are left out.
func FetchSnapshot(ctx context.Context, baseURL string, symbols []string, opts ...Option) (map[string]Quote, error) {
	c, err := newClient(baseURL, opts)
	if err != nil {
		return nil, err
	}
	defer c.release()
	q := url.Values{}
	if len(symbols) > 0 {
		q.Set("symbols", strings.Join(symbols, ","))
	}
	var reply struct {
		Snapshots []Message `json:"snapshots"`
	}
	if err := c.getJSON(ctx, "/v1/snapshot", q, &reply); err != nil {
		return nil, err
	}
	out := make(map[string]Quote, len(reply.Snapshots))
	for _, m := range reply.Snapshots {
		out[m.Symbol] = Quote{Symbol: m.Symbol, Seq: m.Seq, TS: time.UnixMicro(m.TS), Delayed: m.Delayed, Fields: m.Fields}
	}
	return out, nil
}

// release frees what a Client that never connected holds.
func (c *Client) release() {
	c.stop()
	c.closeIdle()
}

func (c *Client) getJSON(ctx context.Context, path string, q url.Values, v any) error {
	u := c.endpoint(path)
	if c.cfg.token != "" && c.cfg.tokenInQuery {
		if q == nil {
			q = url.Values{}
		}
		q.Set("token", c.cfg.token)
	}
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	resp, err := c.get(ctx, u, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, int64(c.cfg.maxMessage))).Decode(v); err != nil {
		return fmt.Errorf("client: GET %s: unreadable reply: %w", c.endpoint(path), err)
	}
	return nil
}
