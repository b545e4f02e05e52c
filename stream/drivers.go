package stream

import (
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
type drivers struct {
	handoff chan *wsDriver // unbuffered: a send succeeds only into an idle goroutine
	quit    <-chan struct{}
	wg      sync.WaitGroup
}

func newDrivers(quit <-chan struct{}) *drivers {
	return &drivers{handoff: make(chan *wsDriver), quit: quit}
}

// run drives d on an idle goroutine, or a new one. It never blocks.
func (p *drivers) run(d *wsDriver) {
	select {
	case p.handoff <- d:
	default:
		p.wg.Add(1)
		go p.loop(d)
	}
}

func (p *drivers) loop(d *wsDriver) {
	defer p.wg.Done()
	idle := time.NewTimer(driverIdle)
	defer idle.Stop()
	for {
		d.drive()
		idle.Reset(driverIdle)
		select {
		case d = <-p.handoff:
		case <-idle.C:
			return
		case <-p.quit:
			return
		}
	}
}
