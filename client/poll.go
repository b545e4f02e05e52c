package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"sync"
)

// pollConn is a long-poll session: each read is one hanging GET.
type pollConn struct {
	c       *Client
	session string
	life    context.Context
	cancel  context.CancelFunc
	wait    string // the wait parameter, seconds
	once    sync.Once
}

// dialPoll creates (or resumes) a long-poll session; its first reply
// carries the session message.
func (c *Client) dialPoll(ctx context.Context, tg target) (*pollConn, *Message, []Message, error) {
	life, cancel := context.WithCancel(c.life)
	stop := context.AfterFunc(ctx, cancel)
	msgs, err := c.poll(life, c.streamURL("/v1/poll", tg, nil))
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err == nil && (len(msgs) == 0 || msgs[0].Type != TypeSession) {
		err = fmt.Errorf("client: long-poll session without a session message")
	}
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	wait := strconv.FormatFloat(c.cfg.pollWait.Seconds(), 'f', -1, 64)
	pc := &pollConn{c: c, session: msgs[0].Session, life: life, cancel: cancel, wait: wait}
	return pc, &msgs[0], msgs[1:], nil
}

// poll sends one poll and returns the messages of its reply, bounded by
// the poll's wait plus the idle timeout.
func (c *Client) poll(ctx context.Context, rawURL string) ([]Message, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.pollWait+c.cfg.idleTimeout)
	defer cancel()
	resp, err := c.get(ctx, rawURL, nil)
	if err != nil {
		if isStatus(err, 404) {
			return nil, errSessionGone
		}
		return nil, err
	}
	defer resp.Body.Close()
	var reply struct {
		Messages []json.RawMessage `json:"messages"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, int64(c.cfg.maxMessage))).Decode(&reply); err != nil {
		return nil, fmt.Errorf("client: unreadable long-poll reply: %w", err)
	}
	var msgs []Message
	for _, raw := range reply.Messages {
		ms, err := decodeFrame(raw)
		if err != nil {
			c.log.Warn("unreadable message skipped", "transport", "poll", "err", err)
			continue
		}
		msgs = append(msgs, ms...)
	}
	return msgs, nil
}

func (pc *pollConn) transport() Transport { return LongPoll }

func (pc *pollConn) read() ([]Message, error) {
	if err := pc.life.Err(); err != nil {
		return nil, err
	}
	extra := url.Values{"session": {pc.session}, "wait": {pc.wait}}
	return pc.c.poll(pc.life, pc.c.streamURL("/v1/poll", target{}, extra))
}

func (pc *pollConn) op(ctx context.Context, body []byte) ([]Message, error) {
	return pc.c.postOp(ctx, pc.session, body)
}

func (pc *pollConn) close() { pc.once.Do(pc.cancel) }
