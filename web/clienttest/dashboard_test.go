package clienttest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/performance"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"tickerd/stream"
)

// The dashboard at / (web/static) in a real Chromium against a real data
// path: an in-process server where the feed is posted by the test, or a
// tickerd process where it must be killed or run with -auth or -feed sim.

// do runs chromedp actions on the page's tab.
func (p *page) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("browser: %v", err)
	}
}

// evalAsync evaluates an expression that yields a promise and decodes
// what it resolves to into v.
func (p *page) evalAsync(expr string, timeout time.Duration, v any) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, timeout)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		p.t.Fatalf("evaluate: decode %s: %v", raw, err)
	}
}

// problems returns the console errors and warnings and the uncaught
// exceptions the page has logged so far.
func (p *page) problems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, l := range p.log {
		if strings.HasPrefix(l, "console.error") || strings.HasPrefix(l, "console.warning") || strings.HasPrefix(l, "exception") {
			out = append(out, l)
		}
	}
	return out
}

// shot saves a screenshot to artifacts/screenshots/name.png (git-ignored).
func (p *page) shot(name string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join("..", "..", "artifacts", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// metrics returns Chromium's run-time metrics of the tab (Performance
// domain): TaskDuration, ScriptDuration, LayoutDuration... in seconds.
func (p *page) metrics() map[string]float64 {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Call(ctx, performance.Enable, performance.EnableParams{}); err != nil {
		p.t.Fatalf("performance metrics: %v", err)
	}
	res, err := chromedp.Call(ctx, performance.GetMetrics, cdp.Empty{})
	if err != nil {
		p.t.Fatalf("performance metrics: %v", err)
	}
	m := map[string]float64{}
	for _, x := range res.Metrics {
		m[x.Name] = x.Value
	}
	return m
}

// row is what the grid shows for a symbol: field → cell text, plus the
// badge and status marks; nil when the symbol has no row.
type row map[string]string

const rowJS = `((sym) => {
  const tr = document.querySelector('#grid tbody tr[data-symbol="' + sym + '"]');
  if (!tr) return null;
  const o = {badge: tr.querySelector('.badge').textContent, status: tr.dataset.status || '',
    delayed: String(tr.classList.contains('delayed')), selected: String(tr.classList.contains('sel'))};
  for (const td of tr.querySelectorAll('td[data-field]')) {
    o[td.dataset.field] = td.textContent;
    o[td.dataset.field + '.flash'] = td.dataset.flash || '';
    o[td.dataset.field + '.class'] = td.className;
  }
  return o;
})(%q)`

func (p *page) row(sym string) row {
	p.t.Helper()
	var r row
	p.eval(fmt.Sprintf(rowJS, sym), &r)
	return r
}

// order is the symbols of the grid's rows, top to bottom.
func (p *page) order() []string {
	p.t.Helper()
	var syms []string
	p.eval(`[...document.querySelectorAll('#grid tbody tr')].map((tr) => tr.dataset.symbol)`, &syms)
	return syms
}

func (p *page) text(sel string) string {
	p.t.Helper()
	var s string
	p.eval(fmt.Sprintf(`document.querySelector(%q)?.textContent ?? ''`, sel), &s)
	return s
}

// sameDecimal reports whether a cell's text shows the decimal v (commas,
// a leading + and a trailing % aside; trailing zeros do not matter).
func sameDecimal(shown, v string) bool {
	shown = strings.TrimSuffix(strings.TrimPrefix(strings.ReplaceAll(shown, ",", ""), "+"), "%")
	a, ok1 := new(big.Rat).SetString(shown)
	b, ok2 := new(big.Rat).SetString(v)
	return ok1 && ok2 && a.Cmp(b) == 0
}

// shows returns "" when the page's row for sym shows the server's
// values of fields, else what differs.
func shows(r row, server map[string]string, fields ...string) string {
	if r == nil {
		return "no row"
	}
	for _, f := range fields {
		if !sameDecimal(r[f], server[f]) {
			return fmt.Sprintf("%s: page %q, server %q", f, r[f], server[f])
		}
	}
	return ""
}

// ingestLines posts NDJSON lines through POST /v1/ingest.
func (s *server) ingestLines(lines ...string) {
	s.t.Helper()
	s.post(strings.NewReader(strings.Join(lines, "\n") + "\n"))
}

func quote(sym string, fields map[string]string) string {
	b, _ := json.Marshal(map[string]any{"symbol": sym, "fields": fields})
	return string(b)
}

// waitLive waits until the status bar says live.
func waitLive(t testing.TB, p *page) {
	t.Helper()
	waitFor(t, 20*time.Second, "status bar live", func() string {
		if s := p.text("#conn b"); !strings.HasPrefix(s, "live · ") {
			return fmt.Sprintf("status %q", s)
		}
		return ""
	})
}

// The page loads, streams and shows the server's values with no console
// error, warning or exception.
func TestDashboardLoadsWithoutConsoleErrors(t *testing.T) {
	s := newServer(t, stream.Config{})
	s.ingest(1, "AAA", "BBB")
	p := newPage(t, s.base+"/?symbols=AAA,BBB")
	waitLive(t, p)
	waitFor(t, 15*time.Second, "quotes shown", func() string {
		return shows(p.row("BBB"), s.snapshot([]string{"BBB"})["BBB"], "bid", "ask", "last", "volume")
	})
	s.ingest(2, "AAA", "BBB")
	waitFor(t, 15*time.Second, "update shown", func() string {
		return shows(p.row("AAA"), s.snapshot([]string{"AAA"})["AAA"], "bid", "ask", "last", "volume")
	})
	if got := p.text("#conn b"); got != "live · WebSocket" {
		t.Errorf("status %q, want live · WebSocket", got)
	}
	if probs := p.problems(); len(probs) > 0 {
		t.Errorf("console problems:\n%s", strings.Join(probs, "\n"))
	}
}

// A symbol typed into the add box (picked from the autocomplete) gets a
// row whose prices equal /v1/snapshot once the feed stops, and the list
// is saved: the page opened again without parameters shows it.
func TestDashboardAddedSymbolMatchesSnapshot(t *testing.T) {
	s := newServer(t, stream.Config{})
	s.ingest(1, "AAA", "CCA", "CCC", "XCC")
	p := newPage(t, s.base+"/?symbols=AAA")
	waitLive(t, p)
	p.do(chromedp.SendKeys(chromedp.ID("add"), "cc"))
	var sugg []string
	waitFor(t, 10*time.Second, "autocomplete", func() string {
		p.eval(`[...document.querySelectorAll('#suggest li')].map((li) => li.textContent)`, &sugg)
		if !slices.Equal(sugg, []string{"CCA", "CCC", "XCC"}) {
			return fmt.Sprintf("suggestions %v, want prefix matches first, then substring ones", sugg)
		}
		return ""
	})
	p.do(chromedp.SendKeys(chromedp.ID("add"), "c"+kb.Enter)) // "ccc", exactly
	waitFor(t, 10*time.Second, "row added", func() string {
		if o := p.order(); !slices.Equal(o, []string{"AAA", "CCC"}) {
			return fmt.Sprintf("rows %v", o)
		}
		return ""
	})
	for round := 2; round <= 5; round++ {
		s.ingest(round, "AAA", "CCC")
	}
	waitFor(t, 15*time.Second, "CCC equals /v1/snapshot", func() string {
		return shows(p.row("CCC"), s.snapshot([]string{"CCC"})["CCC"], "bid", "ask", "last", "volume")
	})
	var saved string
	p.eval(`localStorage.getItem('tickerd.watchlists.v1')`, &saved)
	if !strings.Contains(saved, `"symbols":["AAA","CCC"]`) {
		t.Errorf("localStorage holds %s, want the list AAA,CCC", saved)
	}
	p2 := newPage(t, s.base+"/")
	waitLive(t, p2)
	waitFor(t, 10*time.Second, "saved list restored", func() string {
		if o := p2.order(); !slices.Equal(o, []string{"AAA", "CCC"}) {
			return fmt.Sprintf("rows %v", o)
		}
		return ""
	})
	if probs := p.problems(); len(probs) > 0 {
		t.Errorf("console problems:\n%s", strings.Join(probs, "\n"))
	}
}

// flashLogJS records every flash the grid lights: which cell, which way,
// and the cell's background colour at that moment.
const flashLogJS = `(() => {
  window.flashLog = [];
  new MutationObserver((ms) => {
    for (const m of ms) {
      const td = m.target, v = td.dataset.flash;
      if (!v || !v.endsWith('3')) continue;
      flashLog.push({symbol: td.closest('tr').dataset.symbol, field: td.dataset.field, flash: v,
        bg: getComputedStyle(td).backgroundColor});
    }
  }).observe(document.querySelector('#grid tbody'), {subtree: true, attributes: true, attributeFilter: ['data-flash']});
  return true;
})()`

type flash struct{ Symbol, Field, Flash, Bg string }

// hue tells a flash's background colour: "green", "red" or what it is.
func hue(css string) string {
	var r, g, b int
	var a float64
	if _, err := fmt.Sscanf(css, "rgba(%d, %d, %d, %g)", &r, &g, &b, &a); err != nil || a == 0 {
		return css
	}
	switch {
	case g > r && g > b:
		return "green"
	case r > g && r > b:
		return "red"
	}
	return css
}

// An up-tick flashes that cell green and no other; a down-tick flashes it
// red; the flash fades away; the change columns take the colour of their
// sign.
func TestDashboardFlashesTicks(t *testing.T) {
	s := newServer(t, stream.Config{})
	post := func(fields map[string]string) { s.ingestLines(quote("AAA", fields)) }
	post(map[string]string{"bid": "100.00", "ask": "100.10", "last": "100.05", "change": "0.5", "changePct": "0.5"})
	p := newPage(t, s.base+"/?symbols=AAA")
	waitLive(t, p)
	waitFor(t, 10*time.Second, "first values", func() string {
		r := p.row("AAA")
		if r == nil || r["bid"] != "100.00" {
			return fmt.Sprintf("row %v", r)
		}
		if r["change.class"] != "pos" || r["changePct.class"] != "pos" {
			return fmt.Sprintf("change classes %q %q, want pos", r["change.class"], r["changePct.class"])
		}
		return ""
	})
	p.eval(flashLogJS, nil)
	var log []flash
	p.eval(`flashLog`, &log)
	if len(log) != 0 {
		t.Fatalf("flashes before any tick: %v", log)
	}

	cases := []struct {
		name, bid, flash, colour, change, class string
	}{
		{"up", "100.01", "up3", "green", "0.51", "pos"},
		{"down", "99.99", "down3", "red", "-0.01", "neg"},
		{"up again", "100.02", "up3", "green", "0.52", "pos"},
	}
	for _, c := range cases {
		p.eval(`flashLog.length = 0`, nil)
		post(map[string]string{"bid": c.bid, "change": c.change})
		waitFor(t, 10*time.Second, c.name+" tick", func() string {
			r := p.row("AAA")
			if !sameDecimal(r["bid"], c.bid) {
				return fmt.Sprintf("bid %q", r["bid"])
			}
			if r["change.class"] != c.class {
				return fmt.Sprintf("change class %q, want %q", r["change.class"], c.class)
			}
			return ""
		})
		p.eval(`flashLog`, &log)
		want := []flash{{Symbol: "AAA", Field: "bid", Flash: c.flash}}
		if len(log) != 1 || log[0].Symbol != "AAA" || log[0].Field != "bid" || log[0].Flash != c.flash {
			t.Fatalf("%s: flashes %v, want only %v", c.name, log, want)
		}
		if h := hue(log[0].Bg); h != c.colour {
			t.Errorf("%s: the cell lit %s, want %s", c.name, h, c.colour)
		}
	}
	waitFor(t, 5*time.Second, "the flash fades", func() string {
		if r := p.row("AAA"); r["bid.flash"] != "" {
			return fmt.Sprintf("bid still lit: %q", r["bid.flash"])
		}
		return ""
	})
}

// Killing tickerd shows "reconnecting"; once it is back on the same port
// (empty, new seqs) the page is live again and shows the new data.
func TestDashboardReconnectsAfterServerRestart(t *testing.T) {
	srv := startTickerd(t, "-feed", "none")
	srv.ingest(quote("AAA", map[string]string{"bid": "10.00", "ask": "10.02", "last": "10.01"}))
	p := newPage(t, srv.base+"/?symbols=AAA")
	waitLive(t, p)
	waitFor(t, 10*time.Second, "first data", func() string {
		return shows(p.row("AAA"), map[string]string{"bid": "10.00"}, "bid")
	})
	srv.kill()
	waitFor(t, 15*time.Second, "reconnecting shown", func() string {
		var st struct{ State, Text string }
		p.eval(`({state: document.getElementById('conn').dataset.state, text: document.querySelector('#conn b').textContent})`, &st)
		if st.State != "reconnecting" || !strings.HasPrefix(st.Text, "reconnecting") {
			return fmt.Sprintf("status %+v", st)
		}
		var dim bool
		if p.eval(`document.getElementById('grid').classList.contains('offline')`, &dim); !dim {
			return "grid not dimmed while offline"
		}
		return ""
	})
	srv.restart()
	srv.ingest(quote("AAA", map[string]string{"bid": "20.00", "ask": "20.02", "last": "20.01"}))
	waitLive(t, p)
	waitFor(t, 20*time.Second, "new data after restart", func() string {
		return shows(p.row("AAA"), getSnapshot(t, srv.hc, srv.base, "", "AAA")["AAA"], "bid", "ask", "last")
	})
}

const dashAuthFile = `groups:
  rt: {realtime: ["AAA", "BBB"]}
  dl: {delayed: ["DDD"]}
users:
  - name: alice
    keys: ["k-alice-1"]
    groups: [rt, dl]
`

// With -auth the page asks for a key: a wrong one is refused on the form,
// a right one is kept in sessionStorage and streams the user's symbols;
// the delayed one is labelled delayed.
func TestDashboardLoginAndDelayed(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "auth.yaml")
	if err := os.WriteFile(file, []byte(dashAuthFile), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startTickerd(t, "-feed", "none", "-auth", file, "-delay", "1s")
	srv.ingest(
		quote("AAA", map[string]string{"bid": "1.10", "ask": "1.20"}),
		quote("DDD", map[string]string{"bid": "4.10", "ask": "4.20"}),
		quote("ZZZ", map[string]string{"bid": "9.10", "ask": "9.20"}),
	)
	p := newPage(t, srv.base+"/")
	dialogOpen := func() bool {
		var open bool
		p.eval(`document.getElementById('login').open`, &open)
		return open
	}
	waitFor(t, 15*time.Second, "login screen", func() string {
		if !dialogOpen() {
			return "no login dialog"
		}
		return ""
	})
	p.do(chromedp.EmulateViewport(1280, 720))
	p.shot("dashboard-login")
	p.do(chromedp.SendKeys(chromedp.ID("token"), "wrong-key"+kb.Enter))
	waitFor(t, 10*time.Second, "wrong key refused", func() string {
		if msg := p.text("#login-error"); !dialogOpen() || !strings.Contains(msg, "refused") {
			return fmt.Sprintf("dialog open %v, error %q", dialogOpen(), msg)
		}
		return ""
	})
	p.do(chromedp.SendKeys(chromedp.ID("token"), "k-alice-1"+kb.Enter))
	waitLive(t, p)
	if dialogOpen() {
		t.Fatal("login dialog still open when live")
	}
	var stored string
	p.eval(`sessionStorage.getItem('tickerd.token') + ' ' + (localStorage.getItem('tickerd.token') ?? '')`, &stored)
	if stored != "k-alice-1 " {
		t.Errorf("sessionStorage/localStorage token %q, want it in sessionStorage only", stored)
	}
	// A first visit lists the entitled symbols: AAA and DDD, never ZZZ.
	waitFor(t, 15*time.Second, "entitled rows, DDD delayed", func() string {
		if o := p.order(); !slices.Equal(o, []string{"AAA", "DDD"}) {
			return fmt.Sprintf("rows %v", o)
		}
		a, d := p.row("AAA"), p.row("DDD")
		if !sameDecimal(a["bid"], "1.10") || a["delayed"] != "false" || a["badge"] != "" {
			return fmt.Sprintf("AAA %v", a)
		}
		if !sameDecimal(d["bid"], "4.10") || d["delayed"] != "true" || d["badge"] != "delayed" {
			return fmt.Sprintf("DDD %v", d)
		}
		var note struct {
			Hidden bool
			Text   string
		}
		p.eval(`({hidden: document.getElementById('delayed-note').hidden, text: document.getElementById('delayed-note').textContent})`, &note)
		if note.Hidden || note.Text != "1 delayed" {
			return fmt.Sprintf("status bar delayed note %+v", note)
		}
		return ""
	})
	if probs := p.problems(); len(probs) > 0 {
		t.Errorf("console problems:\n%s", strings.Join(probs, "\n"))
	}
}

// A first visit to a server with no data yet says so, and fills the list
// with the server's symbols once the feed brings some.
func TestDashboardFirstVisitWaitsForData(t *testing.T) {
	s := newServer(t, stream.Config{})
	p := newPage(t, s.base+"/")
	waitLive(t, p)
	if note := p.text("#note"); !strings.Contains(note, "waiting for the feed") {
		t.Errorf("note %q, want it to say the page waits for the feed", note)
	}
	s.ingest(1, "BBB", "AAA")
	waitFor(t, 15*time.Second, "the list filled in", func() string {
		if o := p.order(); !slices.Equal(o, []string{"AAA", "BBB"}) {
			return fmt.Sprintf("rows %v", o)
		}
		return ""
	})
	waitFor(t, 10*time.Second, "quotes", func() string {
		return shows(p.row("AAA"), s.snapshot([]string{"AAA"})["AAA"], "bid", "ask")
	})
	if note := p.text("#note"); note != "" {
		t.Errorf("note %q left after the list filled in", note)
	}
}
