package stream

import (
	"bytes"
	"errors"
	"io"
	"sync"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/klauspost/compress/flate"
)

// WebSocket permessage-deflate (RFC 7692). A client that offers it gets
// it while fewer than Config.WSDeflateMaxSessions sessions have it, with
// no context takeover either way: every message is deflated (or inflated)
// on its own with a pooled compressor, so a compressed session holds no
// compressor memory between messages and the cost is CPU only. Messages
// under wsDeflateMin bytes go uncompressed (the extension allows it):
// deflate would only add to them.
const wsDeflateMin = 128

// wsDeflateParams are the parameters the server accepts.
var wsDeflateParams = wsflate.Parameters{ServerNoContextTakeover: true, ClientNoContextTakeover: true}

// deflateTail ends a sync-flushed deflate stream; RFC 7692 leaves it off
// the wire.
var deflateTail = []byte{0, 0, 0xff, 0xff}

type deflater struct {
	buf bytes.Buffer
	fw  *flate.Writer
}

var deflaters = sync.Pool{New: func() any {
	d := new(deflater)
	d.fw, _ = flate.NewWriter(&d.buf, flate.BestSpeed) // the level is valid
	return d
}}

// deflateMessage appends the compressed form of the message made of
// parts to dst: deflated from a fresh state, sync-flushed, without the
// tail.
func deflateMessage(dst []byte, parts [][]byte) []byte {
	d := deflaters.Get().(*deflater)
	defer deflaters.Put(d)
	d.buf.Reset()
	d.fw.Reset(&d.buf)
	for _, p := range parts {
		_, _ = d.fw.Write(p) // into a bytes.Buffer: no error
	}
	_ = d.fw.Flush()
	out := bytes.TrimSuffix(d.buf.Bytes(), deflateTail)
	dst = append(dst, out...)
	if d.buf.Cap() > maxPooledBuf {
		d.buf = bytes.Buffer{}
		d.fw.Reset(&d.buf)
	}
	return dst
}

var inflaters = sync.Pool{New: func() any { return flate.NewReader(bytes.NewReader(nil)) }}

// errTooBig is a compressed client message that inflates past its limit.
var errTooBig = errors.New("stream: message inflates past its limit")

// inflateMessage decompresses a client's message, refusing one that
// inflates past limit bytes (errTooBig).
func inflateMessage(p []byte, limit int) ([]byte, error) {
	src := io.MultiReader(bytes.NewReader(p), bytes.NewReader(deflateTail))
	fr := inflaters.Get().(io.ReadCloser)
	defer inflaters.Put(fr)
	if err := fr.(flate.Resetter).Reset(src, nil); err != nil {
		return nil, err
	}
	out, err := io.ReadAll(io.LimitReader(fr, int64(limit)+1))
	if err != nil && err != io.ErrUnexpectedEOF {
		return nil, err
	}
	if len(out) > limit {
		return nil, errTooBig
	}
	return out, nil
}

// compressedHeader marks a data frame's header as the first frame of a
// compressed message.
func compressedHeader(h ws.Header) ws.Header {
	h, _ = wsflate.SetBit(h) // only fails if the bit is already set
	return h
}
