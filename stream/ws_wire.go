package stream

import (
	"errors"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

var errCloseSent = errors.New("stream: WebSocket close frame already sent")

// wsWire frames a batch as one text frame: the message itself, or a JSON
// array of messages. Only the drive calls it.
type wsWire struct{ d *wsDriver }

func (w wsWire) writeBatch(msgs [][]byte, _ uint64, deadline time.Time) (int, error) {
	f := getFrame()
	defer putFrame(f)
	if len(msgs) == 1 {
		f.vec = append(f.vec, msgs[0])
		return w.d.writeFrame(f, ws.OpText, deadline)
	}
	// One piece, not one per message: the fd keeps writev's iovec array
	// for the connection's life, sized by its largest writev.
	buf := getBuf()
	defer putBuf(buf)
	b := append((*buf)[:0], '[')
	for i, m := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, m...)
	}
	b = append(b, ']')
	*buf = b
	f.vec = append(f.vec, b)
	return w.d.writeFrame(f, ws.OpText, deadline)
}

func (w wsWire) writeHeartbeat(ts int64, deadline time.Time) (int, error) {
	return w.writeBatch([][]byte{encodeHeartbeat(ts)}, 0, deadline)
}

// writeClose sends the close message, then a close frame: 1001 (going
// away) for shutdown, max_age and replaced, 1008 (policy) otherwise.
func (w wsWire) writeClose(code, text string, deadline time.Time) error {
	if _, err := w.writeBatch([][]byte{encodeClose(code, text)}, 0, deadline); err != nil {
		return err
	}
	status := ws.StatusPolicyViolation // slow_consumer, revoked, unauthorized
	if code == CloseShutdown || code == CloseMaxAge || code == CloseReplaced {
		status = ws.StatusGoingAway
	}
	return w.d.writeCloseFrame(ws.NewCloseFrameBody(status, code), deadline)
}

// writeControl sends a control frame (the reader's pong).
func (d *wsDriver) writeControl(op ws.OpCode, payload []byte, deadline time.Time) error {
	f := getFrame()
	defer putFrame(f)
	f.vec = append(f.vec, payload)
	_, err := d.writeFrame(f, op, deadline)
	return err
}

// writeCloseFrame sends a close frame with body, unless one was sent:
// whichever side closes first, there is one, and nothing follows it.
func (d *wsDriver) writeCloseFrame(body []byte, deadline time.Time) error {
	f := getFrame()
	defer putFrame(f)
	f.vec = append(f.vec, body)
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if d.closeSent {
		return errCloseSent
	}
	d.closeSent = true
	_, err := d.writeFrameLocked(f, ws.OpClose, deadline)
	return err
}

// writeFrame sends f's payload as one frame of op, under the write lock.
// It returns the bytes written, header included.
func (d *wsDriver) writeFrame(f *frame, op ws.OpCode, deadline time.Time) (int, error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if d.closeSent {
		return 0, errCloseSent
	}
	return d.writeFrameLocked(f, op, deadline)
}

// writeFrameLocked copies header and payload into one pooled buffer and
// writes it with one write(2): on loopback and LAN alike the system call
// costs far more than the copy, and a plain write keeps no per-connection
// iovec array alive the way writev does.
func (d *wsDriver) writeFrameLocked(f *frame, op ws.OpCode, deadline time.Time) (int, error) {
	var n int64
	for _, b := range f.vec[1:] {
		n += int64(len(b))
	}
	h := ws.Header{Fin: true, OpCode: op, Length: n}
	buf := getBuf()
	defer putBuf(buf)
	b := (*buf)[:0]
	if d.deflate && op == ws.OpText && n >= wsDeflateMin {
		// Compress into the buffer's tail, then put the header before it.
		b = append(b, make([]byte, ws.MaxHeaderSize)...)
		b = deflateMessage(b, f.vec[1:])
		h = compressedHeader(h)
		h.Length = int64(len(b) - ws.MaxHeaderSize)
		if err := ws.WriteHeaderBuffer(f, h, f.hdr[:]); err != nil {
			return 0, err
		}
		start := ws.MaxHeaderSize - f.hlen
		copy(b[start:], f.hdr[:f.hlen])
		b = b[start:]
	} else {
		if err := ws.WriteHeaderBuffer(f, h, f.hdr[:]); err != nil {
			return 0, err
		}
		b = append(b, f.hdr[:f.hlen]...)
		for _, p := range f.vec[1:] {
			b = append(b, p...)
		}
	}
	*buf = b
	d.wdeadline.apply(deadline, d.conn.SetWriteDeadline) // d.wmu is held
	return d.conn.Write(b)
}

// frame is the scratch of one frame write, pooled: the header and the
// payload, which may be shared bytes and is never modified.
type frame struct {
	hdr  [ws.MaxHeaderSize]byte
	hlen int
	vec  [][]byte // [header slot, payload pieces...]
}

// Write takes the encoded header from ws.WriteHeaderBuffer.
func (f *frame) Write(p []byte) (int, error) {
	f.hlen = copy(f.hdr[:], p)
	return len(p), nil
}

var framePool = sync.Pool{New: func() any { return new(frame) }}

func getFrame() *frame {
	f := framePool.Get().(*frame)
	f.vec = append(f.vec[:0], nil)
	return f
}

func putFrame(f *frame) {
	clear(f.vec) // drop the references to shared message bytes
	f.vec = f.vec[:0]
	framePool.Put(f)
}
