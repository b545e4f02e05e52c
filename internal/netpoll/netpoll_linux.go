//go:build linux

package netpoll

import (
	"encoding/binary"
	"fmt"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// armed is what a registration waits for. EPOLLONESHOT disarms it once it
// has fired; Arm re-arms it. Level-triggered: arming a connection that is
// already readable reports it at once.
const armed = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// wakeID is the event data of the eventfd that Close writes to.
const wakeID = 0

// Poller waits for registered connections to become readable. Its methods
// are safe for concurrent use. Close must not be called from a callback.
type Poller struct {
	epfd   int
	wakefd int // eventfd: Close writes it to end EpollWait

	mu      sync.RWMutex // held across epoll_ctl, so Close cannot close epfd under it
	handles map[uint64]*Handle
	lastID  uint64 // ids are never reused, unlike fds
	closed  bool

	done      chan struct{}  // closed when the poll goroutine returns
	callbacks sync.WaitGroup // running callbacks
	err       error          // why the poll goroutine stopped early
}

// Handle is one registered connection.
type Handle struct {
	p          *Poller
	id         uint64
	rc         syscall.RawConn
	onReadable func()
	removed    bool // guarded by p.mu
}

// New starts a poller: an epoll instance and the goroutine that waits on it.
func New() (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("netpoll: epoll_create1: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("netpoll: eventfd: %w", err)
	}
	ev := eventFor(wakeID)
	ev.Events = unix.EPOLLIN
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(wakefd)
		unix.Close(epfd)
		return nil, fmt.Errorf("netpoll: epoll_ctl add eventfd: %w", err)
	}
	p := &Poller{epfd: epfd, wakefd: wakefd, handles: make(map[uint64]*Handle), done: make(chan struct{})}
	go p.loop()
	return p, nil
}

// eventFor returns an armed event whose data is id. The kernel hands the
// 64 data bits back as given; on every Linux port Fd and Pad are its two
// halves.
func eventFor(id uint64) unix.EpollEvent {
	return unix.EpollEvent{Events: armed, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
}

func idOf(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

func (p *Poller) loop() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			p.err = fmt.Errorf("netpoll: epoll_wait: %w", err)
			return
		}
		p.mu.RLock()
		for i := range events[:n] {
			id := idOf(&events[i])
			if id == wakeID {
				p.mu.RUnlock()
				return
			}
			h := p.handles[id]
			if h == nil || h.removed {
				continue // removed after the event was queued
			}
			p.callbacks.Add(1)
			go func() {
				defer p.callbacks.Done()
				h.onReadable()
			}()
		}
		p.mu.RUnlock()
	}
}

// Register adds conn, armed: onReadable runs (on a new goroutine) once
// conn is readable, then not again until Arm. conn's descriptor is used
// through SyscallConn, never duplicated; conn must stay open until Remove.
func (p *Poller) Register(conn syscall.Conn, onReadable func()) (*Handle, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("netpoll: register: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	p.lastID++
	h := &Handle{p: p, id: p.lastID, rc: rc, onReadable: onReadable}
	if err := h.ctlLocked(unix.EPOLL_CTL_ADD); err != nil {
		return nil, fmt.Errorf("netpoll: register: %w", err)
	}
	p.handles[h.id] = h
	return h, nil
}

// ctlLocked applies op to h's descriptor. Control fails rather than run
// on a closed connection, so a reused fd number is never touched. p.mu
// must be held.
func (h *Handle) ctlLocked(op int) error {
	ev := eventFor(h.id)
	var cerr error
	err := h.rc.Control(func(fd uintptr) {
		cerr = unix.EpollCtl(h.p.epfd, op, int(fd), &ev)
	})
	if err != nil {
		return err
	}
	return cerr
}

// Arm re-arms h after its callback: the next readable moment (or now, if
// bytes are already waiting) calls it again.
func (h *Handle) Arm() error {
	p := h.p
	p.mu.RLock()
	defer p.mu.RUnlock()
	switch {
	case p.closed:
		return ErrClosed
	case h.removed:
		return ErrRemoved
	}
	if err := h.ctlLocked(unix.EPOLL_CTL_MOD); err != nil {
		return fmt.Errorf("netpoll: arm: %w", err)
	}
	return nil
}

// Remove unregisters h; call it before closing the connection. A callback
// already started may still be running. Removing twice is harmless.
func (h *Handle) Remove() error {
	p := h.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if h.removed {
		return nil
	}
	h.removed = true
	delete(p.handles, h.id)
	if p.closed {
		return nil
	}
	if err := h.ctlLocked(unix.EPOLL_CTL_DEL); err != nil {
		return fmt.Errorf("netpoll: remove: %w", err)
	}
	return nil
}

// Buffered returns how many bytes are waiting in the connection's receive
// queue: a reader that has consumed them all re-arms instead of blocking.
// It is 0 at end of stream.
func (h *Handle) Buffered() (int, error) {
	var n int
	var cerr error
	err := h.rc.Control(func(fd uintptr) {
		n, cerr = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
	})
	if err != nil {
		return 0, err
	}
	return n, cerr
}

// Close stops the poller, waits for its goroutine and for running
// callbacks, and releases the epoll instance. Registered connections are
// not closed and get no more callbacks. It returns why polling stopped
// early, if it did; calling it again returns nil.
func (p *Poller) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	if _, err := unix.Write(p.wakefd, one[:]); err != nil && err != unix.EAGAIN {
		// The counter is full only if it was already written: the loop
		// wakes either way. Any other failure leaves it blocked.
		return fmt.Errorf("netpoll: wake: %w", err)
	}
	<-p.done
	p.callbacks.Wait()
	unix.Close(p.wakefd)
	unix.Close(p.epfd)
	return p.err
}
