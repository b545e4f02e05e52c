package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tickerd/feed"
	"tickerd/simulator"
)

// maxReplayBody bounds a POST /v1/admin/replay body.
const maxReplayBody = 64 << 10

// replayFeeds are the -feed replay: sources of this process, which
// GET and POST /v1/admin/replay report on and steer.
type replayFeeds struct {
	adminKey string

	mu    sync.Mutex
	feeds []*replayFeed
}

// replayFeed is one -feed replay: source.
type replayFeed struct {
	id   int
	path string
	r    *simulator.Replayer
	sum  atomic.Pointer[simulator.Summary] // of the window, once known
}

// registerReplayAdmin serves /v1/admin/replay on mux and returns the
// registry the replay feeds join.
func registerReplayAdmin(mux *http.ServeMux, adminKey string) *replayFeeds {
	rf := &replayFeeds{adminKey: adminKey}
	mux.HandleFunc("GET /v1/admin/replay", rf.serveState)
	mux.HandleFunc("POST /v1/admin/replay", rf.serveControl)
	return rf
}

// start starts the replay of -feed replay:ARG into sink under wg.
func (rf *replayFeeds) start(ctx context.Context, wg *sync.WaitGroup, arg string, sink feed.Sink, log *slog.Logger) error {
	r, err := simulator.ParseReplaySource(arg)
	if err != nil {
		return fmt.Errorf("-feed replay:%s: %w", arg, err)
	}
	path, _, _ := strings.Cut(arg, "?")
	rf.mu.Lock()
	f := &replayFeed{id: len(rf.feeds), path: path, r: r}
	rf.feeds = append(rf.feeds, f)
	rf.mu.Unlock()
	wg.Go(func() {
		sum, err := simulator.SummarizeFileContext(ctx, path)
		switch {
		case err == nil:
			w := sum.Window(r.Start, r.End)
			f.sum.Store(&w)
		case ctx.Err() == nil:
			log.Warn("replay: cannot summarize the capture; progress unknown", "path", path, "err", err)
		}
	})
	wg.Go(func() {
		err := r.Feed(ctx, sink)
		switch {
		case err == nil:
			log.Info("replay finished", "path", path, "updates", r.Progress().Sent)
		case !errors.Is(err, context.Canceled):
			log.Error("replay stopped", "path", path, "err", err)
		}
	})
	log.Info("replaying capture", "source", arg, "id", f.id)
	return nil
}

// replayState is one replay feed in GET /v1/admin/replay. Times are RFC
// 3339 in UTC.
type replayState struct {
	ID       int      `json:"id"`
	Path     string   `json:"path"`
	Position *string  `json:"position"` // recorded ts of the last update delivered; null before the first
	Speed    string   `json:"speed"`    // "10x" or "max"
	Paused   bool     `json:"paused"`
	Progress *float64 `json:"progress"` // 0..1 through the window this pass; null until the capture is summarized
	Start    *string  `json:"start"`    // the window replayed; null until known
	End      *string  `json:"end"`
	Loop     bool     `json:"loop"`
	Pass     int      `json:"pass"`
	Sent     int64    `json:"sent"`    // updates delivered, all passes
	Rate     float64  `json:"rate"`    // updates per second lately
	Left     *float64 `json:"leftSec"` // estimated seconds left in this pass; null when unknown
	Done     bool     `json:"done"`
}

func (f *replayFeed) state() replayState {
	p := f.r.Progress()
	s := replayState{ID: f.id, Path: f.path, Speed: p.Speed.String(), Paused: p.Paused, Loop: f.r.Loop,
		Pass: p.Pass, Sent: p.Sent, Rate: p.Rate, Done: p.Done}
	if !p.Position.IsZero() {
		s.Position = timeText(p.Position)
	}
	if sum := f.sum.Load(); sum != nil {
		s.Start, s.End = timeText(time.UnixMicro(sum.First)), timeText(time.UnixMicro(sum.Last))
		frac := 0.0
		if !p.Position.IsZero() && sum.Last > sum.First {
			frac = min(max(float64(p.Position.UnixMicro()-sum.First)/float64(sum.Last-sum.First), 0), 1)
		}
		s.Progress = &frac
		if left, ok := p.Remaining(*sum, p.Speed); ok && !p.Done {
			sec := left.Seconds()
			s.Left = &sec
		}
	}
	return s
}

func timeText(t time.Time) *string {
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

// replayControl is the body of POST /v1/admin/replay.
type replayControl struct {
	Action string `json:"action"` // "pause", "resume", "seek" or empty
	To     string `json:"to"`     // seek: RFC 3339 or +DURATION after the capture's start
	Speed  string `json:"speed"`  // "10x", "0.5x", "max"; empty leaves it
	ID     *int   `json:"id"`     // the replay feed; absent: every one
}

// serveState answers GET /v1/admin/replay: {"replays":[state...]}.
func (rf *replayFeeds) serveState(w http.ResponseWriter, r *http.Request) {
	if msg, code := feed.CheckKey(r, rf.adminKey, "admin", "-admin-key"); code != 0 {
		writeJSON(w, code, map[string]string{"error": msg})
		return
	}
	rf.reply(w, rf.list())
}

// serveControl answers POST /v1/admin/replay: it pauses, resumes, seeks
// or changes the speed of one replay feed (id) or all, then replies as
// GET does.
func (rf *replayFeeds) serveControl(w http.ResponseWriter, r *http.Request) {
	if msg, code := feed.CheckKey(r, rf.adminKey, "admin", "-admin-key"); code != 0 {
		writeJSON(w, code, map[string]string{"error": msg})
		return
	}
	bad := func(format string, args ...any) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf(format, args...)})
	}
	var ctl replayControl
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxReplayBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ctl); err != nil {
		bad("body: want JSON like {\"action\":\"pause\"}, {\"action\":\"seek\",\"to\":\"+10m\"} or {\"speed\":\"10x\"}: %v", err)
		return
	}
	switch ctl.Action {
	case "pause", "resume", "":
		if ctl.To != "" {
			bad(`"to" goes with "action":"seek"`)
			return
		}
	case "seek":
		if ctl.To == "" {
			bad(`"action":"seek" needs "to": RFC 3339 or +DURATION after the capture's start`)
			return
		}
	default:
		bad("unknown action %q: want pause, resume or seek", ctl.Action)
		return
	}
	if ctl.Action == "" && ctl.Speed == "" {
		bad(`nothing to do: give "action" (pause, resume, seek) or "speed"`)
		return
	}
	var speed simulator.Speed
	if ctl.Speed != "" {
		var err error
		if speed, err = simulator.ParseSpeed(ctl.Speed); err != nil {
			bad("speed: %v", err)
			return
		}
	}
	feeds := rf.list()
	if ctl.ID != nil {
		if *ctl.ID < 0 || *ctl.ID >= len(feeds) {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no replay feed %d", *ctl.ID)})
			return
		}
		feeds = feeds[*ctl.ID : *ctl.ID+1]
	}
	if len(feeds) == 0 {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no replay feed: start tickerd with -feed replay:PATH"})
		return
	}
	// Check every seek target before steering anything.
	targets := make([]int64, len(feeds))
	if ctl.Action == "seek" {
		for i, f := range feeds {
			ts, err := simulator.ReplayTime(ctl.To, func() (int64, error) { return simulator.FirstTS(f.path) })
			if err != nil {
				bad("to: %v", err)
				return
			}
			if sum := f.sum.Load(); sum != nil && (ts < sum.First || ts > sum.Last) {
				bad("to: %s is outside replay %d's window, %s to %s", ctl.To, f.id, *timeText(time.UnixMicro(sum.First)), *timeText(time.UnixMicro(sum.Last)))
				return
			}
			targets[i] = ts
		}
	}
	for i, f := range feeds {
		if ctl.Speed != "" {
			f.r.SetSpeed(speed)
		}
		switch ctl.Action {
		case "pause":
			f.r.Pause()
		case "resume":
			f.r.Resume()
		case "seek":
			f.r.SeekTo(targets[i])
		}
	}
	rf.reply(w, feeds)
}

func (rf *replayFeeds) list() []*replayFeed {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	return append([]*replayFeed(nil), rf.feeds...)
}

func (rf *replayFeeds) reply(w http.ResponseWriter, feeds []*replayFeed) {
	states := make([]replayState, len(feeds))
	for i, f := range feeds {
		states[i] = f.state()
	}
	writeJSON(w, http.StatusOK, map[string]any{"replays": states})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
