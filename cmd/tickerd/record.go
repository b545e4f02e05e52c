package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"tickerd/conflate"
	"tickerd/feed"
	"tickerd/simulator"
)

// recordCloseTimeout bounds the final flush of -record on shutdown.
const recordCloseTimeout = 10 * time.Second

// startRecording starts -record: it returns the sink every feed and ingest
// applies to (cache itself without -record; with it, cache wrapped so that
// every update that changes it is recorded) and a function that flushes
// and closes the recording, to be called once the feeds have stopped.
func startRecording(c *config, cache *conflate.Cache, reg prometheus.Registerer, log *slog.Logger) (feed.Sink, func(), error) {
	if c.record == "" {
		return cache, func() {}, nil
	}
	rec, err := simulator.NewRecorder(simulator.RecorderConfig{
		Path:  c.record,
		Queue: c.recordQueue,
		State: func(emit func(*feed.Update)) { emitState(cache, emit) },
		Log:   log.With("component", "record"),
	})
	if err != nil {
		return nil, nil, err
	}
	stats := func(f func(simulator.RecorderStats) int64) func() float64 {
		return func() float64 { return float64(f(rec.Stats())) }
	}
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tickerd_record_written_total", Help: "Updates written to -record captures.",
		}, stats(func(s simulator.RecorderStats) int64 { return s.Written })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tickerd_record_dropped_total", Help: "Updates -record did not record: its queue was full (a slow disk) or a capture could not be written.",
		}, stats(func(s simulator.RecorderStats) int64 { return s.Dropped })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tickerd_record_files_total", Help: "Captures -record has begun (one an hour).",
		}, stats(func(s simulator.RecorderStats) int64 { return s.Files })),
	)
	log.Info("recording every applied update", "path", c.record, "queue", c.recordQueue)
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), recordCloseTimeout)
		defer cancel()
		if err := rec.Close(ctx); err != nil {
			log.Warn("recording not flushed in time", "err", err)
		}
		st := rec.Stats()
		log.Info("recording closed", "written", st.Written, "dropped", st.Dropped, "files", st.Files)
	}
	return recordingSink{Sink: cache, rec: rec}, stop, nil
}

// recordingSink applies updates to its Sink and records those that
// change it, stamped with their ingest time (to the microsecond) when they
// carry none. Recording never blocks Apply.
type recordingSink struct {
	feed.Sink
	rec *simulator.Recorder
}

func (s recordingSink) Apply(u *feed.Update) bool {
	if !s.Sink.Apply(u) {
		return false
	}
	s.rec.Add(u)
	return true
}

// emitState emits the current record of every symbol of cache.
func emitState(cache *conflate.Cache, emit func(*feed.Update)) {
	var u feed.Update
	for _, sym := range cache.Symbols() {
		e := cache.Get(sym)
		if e == nil {
			continue
		}
		v := e.Read()
		u = feed.Update{Symbol: sym, Set: v.Set, Values: v.Values}
		emit(&u)
	}
}
