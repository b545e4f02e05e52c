package bench

import (
	"context"
	"time"
)

// dialNDJSON runs an HTTP streaming session: GET /v1/stream, one frame per
// line; blank lines are skipped.
func dialNDJSON(ctx context.Context, s *session) error {
	resp, closer, err := s.openStream(ctx, "/v1/stream", "application/x-ndjson")
	if err != nil {
		return err
	}
	defer closer()
	defer s.disconnected()
	lr := newLineReader(resp.Body, 1024)
	for {
		line, err := lr.next()
		if err != nil {
			return s.streamEnd(ctx, err)
		}
		if len(line) > 0 {
			s.frame(line, time.Now().UnixMicro())
		}
	}
}
