package stream

import (
	"slices"
	"sync"
	"time"
)

const (
	// driverIdle is how long a drive goroutine waits for another session
	// to drive before it exits.
	driverIdle = 2 * time.Second
	// maxDrivers bounds the drive goroutines. Past it, kicked sessions
	// wait in a run queue (at most once each, so it is bounded by the
	// sessions) for the next free goroutine. A drive blocks only on a
	// write its client's socket cannot take, which the adaptive rate
	// (drain.go) makes rare, so a few hundred goroutines keep two cores
	// busy while their stacks stay small next to the sessions' memory.
	maxDrivers = 256
)

// drivers is an elastic, bounded pool of goroutines that run WebSocket
// drives. A kick hands its driver to an idle goroutine when there is one,
// starts a new one while there are fewer than maxDrivers, and queues the
// driver otherwise; a goroutine that finishes a drive takes the oldest
// queued driver before going idle. Goroutines idle for driverIdle exit, so
// an idle server holds none.
//
// The idle goroutines are a stack: a kick takes the one that went idle
// last, so after a burst the goroutines at the bottom stay idle long
// enough to exit (handing work round-robin, as a channel's queue of
// receivers does, would keep every goroutine of the biggest burst alive).
type drivers struct {
	mu      sync.Mutex
	idle    []*driverG  // idle goroutines, the most recent last
	queue   []*wsDriver // kicked drivers waiting for a goroutine, oldest first
	running int         // goroutines alive
	quit    <-chan struct{}
	wg      sync.WaitGroup
}

// driverG is one pool goroutine's mailbox.
type driverG struct {
	work chan *wsDriver // capacity 1: only the kick that popped it sends
}

func newDrivers(quit <-chan struct{}) *drivers {
	return &drivers{quit: quit}
}

// run drives d on the most recently idle goroutine, a new one, or the next
// one to finish (first in line if urgent). It never blocks.
func (p *drivers) run(d *wsDriver, urgent bool) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		g := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		g.work <- d
		return
	}
	if p.running >= maxDrivers {
		if urgent {
			p.queue = slices.Insert(p.queue, 0, d)
		} else {
			p.queue = append(p.queue, d)
		}
		p.mu.Unlock()
		return
	}
	p.running++
	p.mu.Unlock()
	p.wg.Add(1)
	go p.loop(&driverG{work: make(chan *wsDriver, 1)}, d)
}

func (p *drivers) loop(g *driverG, d *wsDriver) {
	defer p.wg.Done()
	timer := time.NewTimer(driverIdle)
	defer timer.Stop()
	for {
		d.drive()
		p.mu.Lock()
		if len(p.queue) > 0 {
			d = p.queue[0]
			p.queue[0] = nil
			p.queue = p.queue[1:]
			if len(p.queue) == 0 {
				p.queue = nil // let the backing array go
			}
			p.mu.Unlock()
			continue
		}
		p.idle = append(p.idle, g)
		p.mu.Unlock()
		timer.Reset(driverIdle)
		select {
		case d = <-g.work:
			continue
		case <-timer.C:
		case <-p.quit:
		}
		// Leave the stack, unless a kick popped this goroutine meanwhile:
		// then its work is on the way and must be driven.
		if p.leave(g) {
			return
		}
		d = <-g.work
	}
}

// leave removes g from the idle stack and the count of goroutines; false if
// it is not on the stack (a kick took it).
func (p *drivers) leave(g *driverG) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.Index(p.idle, g)
	if i < 0 {
		return false
	}
	p.idle = slices.Delete(p.idle, i, i+1)
	p.running--
	return true
}
