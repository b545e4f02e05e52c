package stream

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

	"tickerd/internal/netpoll"
)

// Reading a WebSocket client's frames. With a poller (Linux), a connection
// is read in rounds: the poller reports it readable and runs onReadable on
// a fresh goroutine, which handles every frame waiting, re-arms the
// registration and returns. Frames are read straight from the connection,
// with no buffer in between, so that no byte can hide from the poller.
// Elsewhere, or for a connection without a file descriptor, readLoop
// reads on a goroutine of its own.

// frameTimeout bounds the arrival of a frame once its first byte has come:
// a client that sends part of a frame and stalls loses its connection
// instead of holding a goroutine. (A variable for tests.)
var frameTimeout = 10 * time.Second

// maxRoundFrames bounds the frames of one round: a client that never stops
// sending still gives its goroutine back now and then.
const maxRoundFrames = 32

var (
	errPeerClosed  = errors.New("stream: WebSocket client sent a close frame")
	errReadStopped = errors.New("stream: WebSocket reading stopped")
	errNothingRead = errors.New("stream: WebSocket readable but no frame came")
	aLongTimeAgo   = time.Unix(1, 0)
)

// wsStatusError is a frame the server refuses: it answers with a close
// frame of this status and ends the connection.
type wsStatusError struct {
	status ws.StatusCode
	reason string
	skip   int64 // payload bytes of the refused frame still unread; -1: unknown
}

func (e *wsStatusError) Error() string {
	return fmt.Sprintf("stream: WebSocket close %d: %s", e.status, e.reason)
}

// wsFragments is a fragmented message being received.
type wsFragments struct {
	op         ws.OpCode // of the first frame
	size       int       // payload so far
	buf        []byte    // text payload so far; binary payloads are dropped
	compressed bool      // permessage-deflate: the first frame had RSV1
}

// wsPoller tells WebSocket sessions that their client has sent something.
// One serves every Server of the process: the first polled session starts
// it and the last one's end closes it, so that its goroutine never
// outlives the sessions that need it.
var wsPoller struct {
	mu    sync.Mutex
	p     *netpoll.Poller
	users int
	off   bool // tests of the fallback reader set it
}

// acquirePoller returns the poller, starting it if needed, or nil if this
// system has none. A non-nil poller must be given back with releasePoller.
func acquirePoller() *netpoll.Poller {
	wsPoller.mu.Lock()
	defer wsPoller.mu.Unlock()
	if wsPoller.off {
		return nil
	}
	if wsPoller.p == nil {
		p, err := netpoll.New()
		if err != nil {
			return nil
		}
		wsPoller.p = p
	}
	wsPoller.users++
	return wsPoller.p
}

func releasePoller() {
	wsPoller.mu.Lock()
	defer wsPoller.mu.Unlock()
	if wsPoller.users--; wsPoller.users == 0 {
		_ = wsPoller.p.Close() // no callback of it is left running: each user waited for its own
		wsPoller.p = nil
	}
}

// startReading handles early (bytes the client sent behind its handshake)
// and hands the connection to the poller, or to a goroutine of its own
// where there is no poller.
func (d *wsDriver) startReading(early []byte) {
	d.rmu.Lock()
	defer d.rmu.Unlock()
	if len(early) > 0 && !d.readRound(&frameReader{d: d, head: early}, false) {
		return
	}
	if d.rclosed {
		return
	}
	if sc, ok := d.conn.(syscall.Conn); ok {
		if p := acquirePoller(); p != nil {
			h, err := p.Register(sc, d.onReadable)
			if err == nil {
				d.h = h
				return
			}
			releasePoller()
		}
	}
	d.readerDone = make(chan struct{})
	go d.readLoop()
}

// stopReading ends the read side for end: it cuts short a read in
// progress, waits for whatever is reading, and unregisters the connection,
// which it leaves open for the caller to close.
func (d *wsDriver) stopReading() {
	d.readStop.Store(true)
	_ = d.conn.SetReadDeadline(aLongTimeAgo)
	d.wakeReader()
	d.rmu.Lock()
	d.rclosed = true
	d.rmu.Unlock()
	if d.readerDone != nil {
		<-d.readerDone
	}
	if d.h != nil {
		_ = d.h.Remove()
		releasePoller()
	}
}

// wakeReader lets a reader waiting for control queue space look again.
func (d *wsDriver) wakeReader() {
	select {
	case d.s.ctrlSpace <- struct{}{}:
	default:
	}
}

// setReadDeadline sets the read deadline unless end is stopping the
// reader, whose deadline in the past must win; it reports whether to go
// on. (If end's flag is not seen here, end's deadline comes after this.)
func (d *wsDriver) setReadDeadline(t time.Time) bool {
	_ = d.conn.SetReadDeadline(t)
	return !d.readStop.Load()
}

// peerGone marks the client gone and kicks a drive, which ends the
// session; a drive already ending waits for this in awaitPeerClose.
func (d *wsDriver) peerGone() {
	d.gone.Store(true)
	select {
	case d.s.wake <- struct{}{}:
	default:
	}
	d.s.signal()
}

// onReadable is the poller's callback: one read round, then re-arm.
func (d *wsDriver) onReadable() {
	d.rmu.Lock()
	defer d.rmu.Unlock()
	if d.rclosed {
		return // a callback that was on its way when end removed the connection
	}
	if !d.readRound(&frameReader{d: d}, true) || d.readStop.Load() {
		return
	}
	if err := d.h.Arm(); err != nil {
		d.peerGone()
	}
}

// readLoop reads a connection that has no poller, until it ends. An idle
// client is waited for without a deadline; a frame, once begun, has
// frameTimeout to arrive.
func (d *wsDriver) readLoop() {
	defer close(d.readerDone)
	d.rmu.Lock()
	defer d.rmu.Unlock()
	var first [1]byte
	for !d.rclosed {
		if !d.awaitCtrlSpace() || !d.setReadDeadline(time.Time{}) {
			return
		}
		if _, err := io.ReadFull(d.conn, first[:]); err != nil {
			d.readFailed(err)
			return
		}
		if err := d.readFrame(&frameReader{d: d, head: first[:]}, false); err != nil {
			d.readFailed(err)
			return
		}
	}
}

// readRound handles the frames waiting on the connection and reports
// whether to go on reading (false once the client is gone or end stops
// reading). signaled says the poller found the connection readable: the
// first frame is then read even though no byte is known to wait, so that
// the end of the stream is seen.
func (d *wsDriver) readRound(r *frameReader, signaled bool) bool {
	for i := range maxRoundFrames {
		if (i > 0 || !signaled) && !r.waiting() {
			return true
		}
		if !d.awaitCtrlSpace() {
			return false
		}
		switch err := d.readFrame(r, i == 0 && signaled); {
		case err == errNothingRead:
			return true
		case err != nil:
			d.readFailed(err)
			return false
		}
	}
	return true
}

// awaitCtrlSpace waits while the session's control queue is full, so that
// a client that sends ops without reading replies cannot grow server
// memory: its frames stay in the kernel until the writer catches up. It
// reports false if end is stopping the reader.
func (d *wsDriver) awaitCtrlSpace() bool {
	for !d.ended.Load() && d.s.ctrlFull() {
		<-d.s.ctrlSpace
	}
	return !d.readStop.Load()
}

// readFailed ends reading after err. A refused frame gets a close frame
// with its status; then what the client still sends is dropped until its
// close frame or closeGrace, so that closing with unread bytes does not
// reset the connection before the client has read ours.
func (d *wsDriver) readFailed(err error) {
	var se *wsStatusError
	if errors.As(err, &se) && !d.readStop.Load() &&
		d.writeCloseFrame(ws.NewCloseFrameBody(se.status, se.reason), time.Now().Add(closeGrace)) == nil &&
		d.setReadDeadline(time.Now().Add(closeGrace)) {
		d.discardUntilClose(se.skip)
	}
	d.peerGone()
}

// discardUntilClose drops the rest of a refused frame (skip bytes), then
// whole frames up to the client's close frame. If the frame boundary is
// lost (skip < 0), it drops bytes until the client closes the connection.
func (d *wsDriver) discardUntilClose(skip int64) {
	if skip < 0 {
		_, _ = io.Copy(io.Discard, d.conn)
		return
	}
	for {
		if _, err := io.CopyN(io.Discard, d.conn, skip); err != nil {
			return
		}
		h, err := ws.ReadHeader(d.conn)
		if err != nil || h.OpCode == ws.OpClose {
			return
		}
		skip = h.Length
	}
}

// frameReader reads one frame at a time straight from the connection,
// after any bytes already taken from it (head).
type frameReader struct {
	d    *wsDriver
	head []byte
	n    int // bytes of the current frame read so far
}

func (r *frameReader) Read(p []byte) (int, error) {
	if len(r.head) > 0 {
		n := copy(p, r.head)
		r.head = r.head[n:]
		r.n += n
		return n, nil
	}
	n, err := r.d.conn.Read(p)
	r.n += n
	return n, err
}

// waiting reports whether a byte can be read without waiting.
func (r *frameReader) waiting() bool {
	if len(r.head) > 0 {
		return true
	}
	if r.d.h == nil {
		return false
	}
	n, err := r.d.h.Buffered()
	return err == nil && n > 0
}

// readFrame reads and handles one frame. mayBeEmpty allows for no frame at
// all: a timeout before its first byte is errNothingRead.
func (d *wsDriver) readFrame(r *frameReader, mayBeEmpty bool) error {
	if !d.setReadDeadline(time.Now().Add(frameTimeout)) {
		return errReadStopped
	}
	r.n = 0
	h, err := ws.ReadHeader(r)
	compressed := false
	if err == nil && d.deflate && !h.OpCode.IsControl() {
		// RSV1 marks the first frame of a compressed message.
		if h, compressed, err = wsflate.UnsetBit(h); err != nil || (compressed && (d.frag != nil || h.OpCode == ws.OpContinuation)) {
			return &wsStatusError{ws.StatusProtocolError, "bad compression bit", h.Length}
		}
	}
	if err == nil {
		state := ws.StateServerSide
		if d.frag != nil {
			state = state.Set(ws.StateFragmented)
		}
		if err = ws.CheckHeader(h, state); err != nil {
			return &wsStatusError{ws.StatusProtocolError, err.Error(), h.Length}
		}
		if h.OpCode.IsControl() {
			err = d.readControl(r, h)
		} else {
			err = d.readData(r, h, compressed)
		}
	}
	if isTimeout(err) {
		if r.n == 0 && mayBeEmpty {
			return errNothingRead
		}
		if r.n > 0 && !d.readStop.Load() {
			return &wsStatusError{ws.StatusPolicyViolation, "frame not received in time", -1}
		}
	}
	return err
}

// readControl answers a ping with a pong and a close with a close (unless
// it answers ours); pongs are ignored.
func (d *wsDriver) readControl(r io.Reader, h ws.Header) error {
	p := make([]byte, h.Length) // at most 125 bytes: CheckHeader saw to it
	if _, err := io.ReadFull(r, p); err != nil {
		return err
	}
	ws.Cipher(p, h.Mask, 0)
	deadline := time.Now().Add(closeGrace)
	switch h.OpCode {
	case ws.OpPing:
		return d.writeControl(ws.OpPong, p, deadline)
	case ws.OpClose:
		// Echo the status code (none for none); a malformed body or a
		// code a client may not send is a protocol error.
		var body []byte
		if len(p) > 0 {
			body = ws.NewCloseFrameBody(ws.StatusProtocolError, "")
			if len(p) >= 2 && ws.CheckCloseFrameData(ws.ParseCloseFrameData(p)) == nil {
				body = p[:2]
			}
		}
		_ = d.writeCloseFrame(body, deadline)
		return errPeerClosed
	}
	return nil
}

// readData receives a data frame; a message complete with it is handled.
// A message of more than Config.MaxMessageBytes is refused with status 1009.
func (d *wsDriver) readData(r io.Reader, h ws.Header, compressed bool) error {
	f := d.frag
	if f == nil {
		f = &wsFragments{op: h.OpCode, compressed: compressed}
	}
	limit := d.srv.cfg.MaxMessageBytes
	if int64(f.size)+h.Length > int64(limit) {
		return &wsStatusError{ws.StatusMessageTooBig, fmt.Sprintf("message larger than %d bytes", limit), h.Length}
	}
	n := int(h.Length)
	f.size += n
	if f.op == ws.OpText {
		start := len(f.buf)
		f.buf = slices.Grow(f.buf, n)[:start+n]
		if _, err := io.ReadFull(r, f.buf[start:]); err != nil {
			return err
		}
		ws.Cipher(f.buf[start:], h.Mask, 0)
	} else if _, err := io.CopyN(io.Discard, r, h.Length); err != nil {
		return err
	}
	if !h.Fin {
		d.frag = f
		return nil
	}
	d.frag = nil
	msg := f.buf
	if f.compressed && f.op == ws.OpText {
		var err error
		if msg, err = inflateMessage(f.buf, limit); errors.Is(err, errTooBig) {
			return &wsStatusError{ws.StatusMessageTooBig, fmt.Sprintf("message inflates past %d bytes", limit), 0}
		} else if err != nil {
			return &wsStatusError{ws.StatusProtocolError, "bad compressed message: " + err.Error(), 0}
		}
	}
	d.handleMessage(f.op, msg)
	return nil
}

// handleMessage applies one client message as ws.go always has: a text
// message is an op; binary messages get an error reply.
func (d *wsDriver) handleMessage(op ws.OpCode, data []byte) {
	if d.ended.Load() {
		return // the session is closing
	}
	s, srv := d.s, d.srv
	if op != ws.OpText {
		s.enqueue(srv.errorReply(nil, CodeBadRequest, "", "binary frames are not accepted; send JSON text"))
		return
	}
	o, err := ParseOp(data)
	if err != nil {
		s.enqueue(srv.opErrorReply(err))
		return
	}
	s.enqueue(s.apply(o)...)
}
