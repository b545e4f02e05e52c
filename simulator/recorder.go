package simulator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"tickerd/feed"
)

// DefaultRecordQueue is the default of RecorderConfig.Queue.
const DefaultRecordQueue = 16384

// Timing of a Recorder.
const (
	recordFlushEvery = time.Second      // the capture under way is flushed this often
	recordRetryAfter = 10 * time.Second // after a failed create or write, no capture for this long
	recordLogEvery   = 10 * time.Second // at most one drop or error line this often
	recordHourGrace  = 5 * time.Second  // an idle capture ends this long after its hour
)

// RecorderConfig configures a Recorder.
type RecorderConfig struct {
	// Path names the captures: the capture of each hour (UTC, by ingest
	// time) is Path with "-YYYYMMDDTHHMMZ" inserted before the first dot
	// of its file name ("ticks.zst" → "ticks-20261122T0400Z.zst"), with
	// its index beside it (".idx" appended). An existing file is never
	// overwritten: "-1", "-2"… follow the time instead. Required; its
	// directory must exist.
	Path string
	// Queue is how many updates may wait to be written; Add drops updates
	// beyond it. Zero means DefaultRecordQueue (16384, about 8 MiB).
	Queue int
	// State, if set, is called as each capture after the first begins,
	// and must emit every symbol's current record: they head the capture,
	// stamped with the ts of its first update, so an hour replays on its
	// own. It is called from the Recorder's goroutine; emit must not be
	// kept.
	State func(emit func(u *feed.Update))
	// Log gets the captures begun and ended, failures and drops (at most
	// one line per 10 s for drops and failures). Nil means slog.Default().
	Log *slog.Logger
}

// RecorderStats counts what a Recorder did.
type RecorderStats struct {
	Written int64 // updates written to captures (State records not counted)
	Dropped int64 // updates not recorded: the queue was full, a capture could not be written, or Add came after Close
	Files   int64 // captures begun
}

// Recorder records the updates handed to Add into a capture per hour,
// from a goroutine of its own, so that a slow disk never blocks the
// caller: updates wait in a bounded queue and are dropped (and counted)
// when it is full. Add and Stats are safe for concurrent use.
type Recorder struct {
	cfg  RecorderConfig
	log  *slog.Logger
	q    chan feed.Update
	stop chan struct{} // closed by Close: drain the queue and end
	quit chan struct{} // closed when Close gives up waiting: end now
	done chan struct{} // closed when the goroutine returns

	closed  atomic.Bool
	written atomic.Int64
	dropped atomic.Int64
	files   atomic.Int64

	// Owned by the goroutine.
	cur       *CaptureWriter
	curPath   string
	curHour   time.Time
	retryAt   time.Time // no capture is begun before then
	logged    int64     // drops already logged
	loggedAt  time.Time // the last drop or failure line
	failures  int       // failures not logged yet
	lastError error
}

// NewRecorder checks cfg and starts a Recorder; Close stops it. The first
// capture is created with the first update.
func NewRecorder(cfg RecorderConfig) (*Recorder, error) {
	if cfg.Path == "" {
		return nil, errors.New("simulator: recorder: no path")
	}
	if fi, err := os.Stat(filepath.Dir(cfg.Path)); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("simulator: recorder: %s is not a directory", filepath.Dir(cfg.Path))
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultRecordQueue
	}
	r := &Recorder{
		cfg:  cfg,
		log:  cfg.Log,
		q:    make(chan feed.Update, cfg.Queue),
		stop: make(chan struct{}),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	go r.loop()
	return r, nil
}

// Add queues a copy of u to be recorded, stamped with the time now when
// u.TS is zero. It never blocks: when the queue is full, or after Close,
// it drops u and reports false.
func (r *Recorder) Add(u *feed.Update) bool {
	if r.closed.Load() {
		r.dropped.Add(1)
		return false
	}
	v := *u
	if v.TS == 0 {
		v.TS = time.Now().UnixMicro()
	}
	select {
	case r.q <- v:
		return true
	default:
		r.dropped.Add(1)
		return false
	}
}

// Stats returns the counts so far.
func (r *Recorder) Stats() RecorderStats {
	return RecorderStats{Written: r.written.Load(), Dropped: r.dropped.Load(), Files: r.files.Load()}
}

// Close stops taking updates, writes those queued and ends the capture
// under way. If ctx ends first, the rest of the queue is dropped, the
// capture ended, and ctx.Err() returned. Updates added while Close runs
// may be dropped. It is safe to call twice.
func (r *Recorder) Close(ctx context.Context) error {
	if r.closed.CompareAndSwap(false, true) {
		close(r.stop)
	}
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
	}
	select {
	case <-r.quit:
	default:
		close(r.quit)
	}
	<-r.done
	return ctx.Err()
}

// loop writes what comes through the queue until Close.
func (r *Recorder) loop() {
	defer close(r.done)
	defer r.endCapture()
	t := time.NewTicker(recordFlushEvery)
	defer t.Stop()
	for {
		select {
		case u := <-r.q:
			r.write(&u)
		case now := <-t.C:
			r.tick(now)
		case <-r.stop:
			r.drain()
			return
		}
	}
}

// drain writes what is queued, unless Close gives up first.
func (r *Recorder) drain() {
	for {
		select {
		case <-r.quit:
			r.dropped.Add(int64(len(r.q)))
			return
		case u := <-r.q:
			r.write(&u)
		default:
			return
		}
	}
}

// tick flushes the capture under way, ends it once its hour is over (with
// some grace for updates still queued), and logs drops.
func (r *Recorder) tick(now time.Time) {
	if r.cur != nil {
		if err := r.cur.Flush(); err != nil {
			r.fail(err)
		} else if now.Sub(r.curHour) >= time.Hour+recordHourGrace {
			r.endCapture()
		}
	}
	r.logDrops(now)
}

// write records u, beginning a capture if need be.
func (r *Recorder) write(u *feed.Update) {
	hour := time.UnixMicro(u.TS).UTC().Truncate(time.Hour)
	if r.cur != nil && hour.After(r.curHour) {
		r.endCapture()
	}
	if r.cur == nil && !r.begin(hour, u.TS) {
		r.dropped.Add(1)
		return
	}
	if err := r.cur.Write(u); err != nil {
		r.dropped.Add(1)
		r.fail(err)
		return
	}
	r.written.Add(1)
}

// begin creates the capture of hour, headed by the State records stamped
// ts when it is not the first. It reports whether a capture is under way.
func (r *Recorder) begin(hour time.Time, ts int64) bool {
	if time.Now().Before(r.retryAt) {
		return false
	}
	var err error
	for n := 0; n < 100; n++ {
		path := hourPath(r.cfg.Path, hour, n)
		if r.cur, err = createCapture(path, os.O_EXCL); err == nil {
			r.cur.durable = true
			r.curPath, r.curHour = path, hour
			break
		}
		if !errors.Is(err, os.ErrExist) {
			break
		}
	}
	if r.cur == nil {
		r.fail(err)
		return false
	}
	r.log.Info("recording", "file", r.curPath)
	if r.files.Add(1) > 1 && r.cfg.State != nil {
		r.cfg.State(func(u *feed.Update) {
			if r.cur == nil || u.Set == 0 {
				return
			}
			v := *u
			v.TS = ts
			if err := r.cur.Write(&v); err != nil {
				r.fail(err)
			}
		})
	}
	return r.cur != nil
}

// endCapture ends the capture under way, if any.
func (r *Recorder) endCapture() {
	if r.cur == nil {
		return
	}
	n := r.cur.Updates()
	err := r.cur.Close()
	r.cur = nil
	if err != nil {
		r.fail(err)
		return
	}
	r.log.Info("recorded", "file", r.curPath, "updates", n)
}

// fail gives up the capture under way after an error, logs it (at most
// once per recordLogEvery) and holds off the next capture for
// recordRetryAfter.
func (r *Recorder) fail(err error) {
	if r.cur != nil {
		_ = r.cur.Close()
		r.cur = nil
	}
	now := time.Now()
	r.retryAt = now.Add(recordRetryAfter)
	r.failures++
	r.lastError = err
	r.logDrops(now)
}

// logDrops logs the drops and failures since the last line, if any, at
// most once per recordLogEvery.
func (r *Recorder) logDrops(now time.Time) {
	dropped := r.dropped.Load()
	if (dropped == r.logged && r.failures == 0) || now.Sub(r.loggedAt) < recordLogEvery {
		return
	}
	attrs := []any{"dropped", dropped - r.logged, "droppedTotal", dropped}
	if r.failures > 0 {
		attrs = append(attrs, "failures", r.failures, "err", r.lastError, "retryIn", recordRetryAfter)
		r.log.Error("recording failed", attrs...)
	} else {
		r.log.Warn("recording dropped updates: the disk is slower than the feed", attrs...)
	}
	r.logged, r.loggedAt, r.failures = dropped, now, 0
}

// hourPath returns the name of the n-th capture of hour for base: base
// with "-YYYYMMDDTHHMMZ" (and "-n" after the first) inserted before the
// first dot of its file name.
func hourPath(base string, hour time.Time, n int) string {
	dir, file := filepath.Split(base)
	name, ext := file, ""
	if i := strings.IndexByte(file, '.'); i > 0 {
		name, ext = file[:i], file[i:]
	}
	name += "-" + hour.UTC().Format("20060102T1504Z")
	if n > 0 {
		name += "-" + strconv.Itoa(n)
	}
	return dir + name + ext
}
