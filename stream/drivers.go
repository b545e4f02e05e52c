package stream

import (
	"slices"
	"sync"
	"time"
)

// driverIdle is how long a drive goroutine waits for another session to
// drive before it exits.
const driverIdle = 2 * time.Second

// drivers is an elastic pool of goroutines that run WebSocket drives. A
// kick hands its driver to an idle goroutine when there is one and starts
// a new one otherwise, so a drive never waits for a slow one (a client
// whose write blocks holds only its own goroutine), while a busy server
// reuses warm goroutines instead of paying for a new goroutine and its
// stack growth on every write. Goroutines idle for driverIdle exit, so an
// idle server holds none.
//
// The idle goroutines are a stack: a kick takes the one that went idle
// last. After a burst the pool shrinks back to what the load needs, since
// the goroutines at the bottom stay idle long enough to exit (handing work
// round-robin, as a channel's queue of receivers does, would keep every
// goroutine of the biggest burst alive).
type drivers struct {
	mu   sync.Mutex
	idle []*driverG // idle goroutines, the most recent last
	quit <-chan struct{}
	wg   sync.WaitGroup
}

// driverG is one pool goroutine's mailbox.
type driverG struct {
	work chan *wsDriver // capacity 1: only the kick that popped it sends
}

func newDrivers(quit <-chan struct{}) *drivers {
	return &drivers{quit: quit}
}

// run drives d on the most recently idle goroutine, or a new one. It never
// blocks.
func (p *drivers) run(d *wsDriver) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		g := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		g.work <- d
		return
	}
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

// leave removes g from the idle stack; false if it is not there (a kick
// took it).
func (p *drivers) leave(g *driverG) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.Index(p.idle, g)
	if i < 0 {
		return false
	}
	p.idle = slices.Delete(p.idle, i, i+1)
	return true
}
