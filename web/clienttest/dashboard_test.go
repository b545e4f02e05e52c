package clienttest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
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

// getSnapshot reads /v1/snapshot of base (with a bearer token, if any).
func getSnapshot(t testing.TB, hc *http.Client, base, token string, symbols ...string) map[string]map[string]string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/snapshot?symbols="+strings.Join(symbols, ","), nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	defer resp.Body.Close()
	var r struct {
		Snapshots []struct {
			Symbol string
			Fields map[string]string
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	out := map[string]map[string]string{}
	for _, sn := range r.Snapshots {
		out[sn.Symbol] = sn.Fields
	}
	return out
}

// ingestLines posts NDJSON lines through POST /v1/ingest.
func (s *server) ingestLines(lines ...string) {
	s.t.Helper()
	resp, err := s.hc.Post(s.base+"/v1/ingest", "application/x-ndjson", strings.NewReader(strings.Join(lines, "\n")+"\n"))
	if err != nil {
		s.t.Fatalf("ingest: %v", err)
	}
	defer resp.Body.Close()
	var r struct{ Accepted, Rejected int }
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Rejected != 0 {
		s.t.Fatalf("ingest: status %d, %+v, %v", resp.StatusCode, r, err)
	}
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

// Everything works from the keyboard: / focuses the add box, Enter adds,
// Escape goes to the grid, arrows move the selection, Alt+arrows reorder,
// Enter opens the detail panel, Escape closes it, Delete removes a row.
func TestDashboardKeyboard(t *testing.T) {
	s := newServer(t, stream.Config{})
	s.ingest(1, "AAA", "BBB", "CCC")
	p := newPage(t, s.base+"/?symbols=AAA,BBB")
	waitLive(t, p)
	selected := func() string {
		var sym string
		p.eval(`document.querySelector('#grid tbody tr.sel')?.dataset.symbol ?? ''`, &sym)
		return sym
	}
	focused := func() string {
		var f string
		p.eval(`document.activeElement.id || document.activeElement.dataset?.symbol || document.activeElement.tagName`, &f)
		return f
	}
	p.do(chromedp.KeyEvent("/"))
	if f := focused(); f != "add" {
		t.Fatalf("after /, focus on %q, want the add box", f)
	}
	p.do(chromedp.KeyEvent("ccc" + kb.Enter))
	waitFor(t, 5*time.Second, "CCC added", func() string {
		if o := p.order(); !slices.Equal(o, []string{"AAA", "BBB", "CCC"}) {
			return fmt.Sprintf("rows %v", o)
		}
		return ""
	})
	p.do(chromedp.KeyEvent(kb.Escape))
	if f, sel := focused(), selected(); f != "CCC" || sel != "CCC" {
		t.Fatalf("after Escape, focus %q selection %q, want the added row", f, sel)
	}
	p.do(chromedp.KeyEvent(kb.ArrowUp))
	if sel := selected(); sel != "BBB" {
		t.Fatalf("ArrowUp: selection %q, want BBB", sel)
	}
	p.do(chromedp.KeyEvent(kb.ArrowUp, chromedp.KeyModifiers(chromedp.ModifierAlt)))
	if o := p.order(); !slices.Equal(o, []string{"BBB", "AAA", "CCC"}) {
		t.Fatalf("Alt+ArrowUp: rows %v, want BBB moved up", o)
	}
	p.do(chromedp.KeyEvent(kb.ArrowDown))
	if sel := selected(); sel != "AAA" {
		t.Fatalf("ArrowDown: selection %q, want AAA", sel)
	}
	p.do(chromedp.KeyEvent(kb.Enter))
	waitFor(t, 5*time.Second, "detail open", func() string {
		var d struct {
			Hidden      bool
			Title, Bid  string
			Ticks, Dpts int
		}
		p.eval(`({hidden: document.getElementById('detail').hidden, title: document.querySelector('.d-title').textContent,
			bid: document.querySelector('.d-fields dd[data-field=bid]').textContent,
			ticks: document.querySelectorAll('.d-ticks tbody tr').length})`, &d)
		want := s.snapshot([]string{"AAA"})["AAA"]["bid"]
		if d.Hidden || d.Title != "AAA" || !sameDecimal(d.Bid, want) || d.Ticks == 0 {
			return fmt.Sprintf("detail %+v, want AAA with bid %s and ticks", d, want)
		}
		return ""
	})
	p.do(chromedp.KeyEvent(kb.Escape))
	var hidden bool
	if p.eval(`document.getElementById('detail').hidden`, &hidden); !hidden {
		t.Fatal("Escape left the detail panel open")
	}
	if f := focused(); f != "AAA" {
		t.Errorf("after closing the panel focus is on %q, want the AAA row", f)
	}
	p.do(chromedp.KeyEvent(kb.Delete))
	if o := p.order(); !slices.Equal(o, []string{"BBB", "CCC"}) {
		t.Fatalf("Delete: rows %v, want AAA gone", o)
	}
	if sel := selected(); sel != "CCC" {
		t.Errorf("after Delete the selection is %q, want the next row", sel)
	}
}

// layoutFeed posts a realistic record per symbol: one halted, one stale.
func layoutFeed(s *server, syms []string, round int) {
	var lines []string
	for i, sym := range syms {
		base := 20 + 37*i%400
		px := float64(base) + float64((round*7+i*3)%11)/10
		chg := float64((i*13+round*5)%21-10) / 10
		f := map[string]string{
			"bid": fmt.Sprintf("%.2f", px-0.01), "ask": fmt.Sprintf("%.2f", px+0.01), "last": fmt.Sprintf("%.2f", px),
			"bidSize": fmt.Sprint(100 * (i + 1)), "askSize": fmt.Sprint(200 + i), "lastSize": "100",
			"volume": fmt.Sprint(120000*(i+1) + round*1300), "change": fmt.Sprintf("%.2f", chg),
			"changePct": fmt.Sprintf("%.2f", chg/float64(base)*100), "prevClose": fmt.Sprintf("%.2f", float64(base)-chg),
			"open": fmt.Sprintf("%.2f", float64(base)), "high": fmt.Sprintf("%.2f", px+0.6), "low": fmt.Sprintf("%.2f", px-0.7),
			"time": time.Now().UTC().Format(time.RFC3339Nano), "status": "trading",
		}
		switch i {
		case 2:
			f["status"] = "halted"
		case 4:
			f["status"] = "stale"
		}
		lines = append(lines, quote(sym, f))
	}
	s.ingestLines(lines...)
}

// Screenshots at 1280x720 in both themes and at phone width (saved in
// artifacts/screenshots): the theme key switches the colours, halted and
// stale rows are marked, and a phone-width page does not scroll sideways.
func TestDashboardThemesAndLayouts(t *testing.T) {
	s := newServer(t, stream.Config{})
	syms := strings.Fields("AAPL MSFT NVDA AMZN GOOGL META TSLA JPM V XOM UNH AVGO LLY MA HD COST PG JNJ")
	layoutFeed(s, syms, 1)
	p := newPage(t, s.base+"/?theme=dark&symbols="+strings.Join(syms, ","))
	p.do(chromedp.EmulateViewport(1280, 720))
	waitLive(t, p)
	// Feed a few seconds so that the sparklines have points.
	for round := 2; round <= 4; round++ {
		time.Sleep(1100 * time.Millisecond)
		layoutFeed(s, syms, round)
	}
	waitFor(t, 10*time.Second, "marks", func() string {
		if r := p.row("NVDA"); r["badge"] != "halted" || r["status"] != "halted" {
			return fmt.Sprintf("NVDA %v, want halted", r)
		}
		if r := p.row("GOOGL"); r["badge"] != "stale" || r["status"] != "stale" {
			return fmt.Sprintf("GOOGL %v, want stale", r)
		}
		return ""
	})
	bg := func() string {
		var c string
		p.eval(`document.documentElement.dataset.theme + ' ' + getComputedStyle(document.body).backgroundColor`, &c)
		return c
	}
	dark := bg()
	if !strings.HasPrefix(dark, "dark ") {
		t.Fatalf("theme %q, want dark from ?theme=dark", dark)
	}
	p.do(chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent(kb.ArrowDown))
	p.shot("dashboard-1280-dark")
	p.do(chromedp.KeyEvent("t"))
	light := bg()
	if !strings.HasPrefix(light, "light ") || light[6:] == dark[5:] {
		t.Fatalf("after t: %q (dark was %q), want the light theme's colours", light, dark)
	}
	var saved string
	p.eval(`localStorage.getItem('tickerd.theme')`, &saved)
	if saved != "light" {
		t.Errorf("theme saved as %q, want light", saved)
	}
	time.Sleep(300 * time.Millisecond) // the sparklines repaint in the next frames
	p.shot("dashboard-1280-light")
	p.do(chromedp.KeyEvent(kb.Enter))
	time.Sleep(600 * time.Millisecond)
	p.shot("dashboard-1280-light-detail")
	p.do(chromedp.KeyEvent(kb.Escape), chromedp.KeyEvent("t"))

	p.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	time.Sleep(300 * time.Millisecond)
	var overflow struct{ Scroll, Client int }
	p.eval(`({scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth})`, &overflow)
	if overflow.Scroll > overflow.Client {
		t.Errorf("phone width: the page is %d px wide in a %d px viewport", overflow.Scroll, overflow.Client)
	}
	var gridFits bool
	p.eval(`(() => { const w = document.querySelector('.gridwrap'); return w.scrollWidth <= w.clientWidth; })()`, &gridFits)
	if !gridFits {
		t.Errorf("phone width: the grid scrolls sideways; the narrow layout should drop columns")
	}
	p.shot("dashboard-390-dark")
	p.do(chromedp.KeyEvent(kb.Enter))
	time.Sleep(600 * time.Millisecond)
	p.shot("dashboard-390-dark-detail")
	if probs := p.problems(); len(probs) > 0 {
		t.Errorf("console problems:\n%s", strings.Join(probs, "\n"))
	}
}

// frames is what measureJS reports, over windows of one second each.
type frames struct {
	FPS        []float64 // animation frames per second, per window
	LongMs     []float64 // time in long tasks (over 50 ms), per window
	LongTasks  int       // long tasks over the whole run (PerformanceObserver 'longtask')
	MaxFrameMs float64   // the longest gap between two frames
	Updates    float64   // quote changes the client delivered per second
	Cells      float64   // cells the grid wrote per second
	Seconds    float64
	UpdateMs   float64 // ms per second spent folding changes into the grid
	FlushMs    float64 // ms per second spent writing the grid
	// From Chromium's Performance domain, ms per second of the main thread.
	TaskMs, ScriptMs, LayoutMs, StyleMs float64
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// measureJS counts animation frames and long tasks in n windows of one
// second.
const measureJS = `new Promise((resolve) => {
  const windows = %d;
  const long = [];
  const po = new PerformanceObserver((l) => long.push(...l.getEntries()));
  po.observe({type: 'longtask'});
  const d = window.dashboard;
  const count = () => d.stats.buckets.reduce((n, b) => n + b.count, 0) + d.stats.cur.count;
  const u0 = count(), c0 = d.grid.stats.cells;
  const upd = d.grid.update, fl = d.grid.flush;
  let inUpdate = 0, inFlush = 0;
  d.grid.update = function (...a) { const t = performance.now(); try { return upd.apply(this, a); } finally { inUpdate += performance.now() - t; } };
  d.grid.flush = function (...a) { const t = performance.now(); try { return fl.apply(this, a); } finally { inFlush += performance.now() - t; } };
  const perWindow = new Array(windows).fill(0);
  let maxGap = 0, t0 = 0, last = 0;
  const step = (t) => {
    if (!t0) t0 = last = t;
    maxGap = Math.max(maxGap, t - last);
    last = t;
    const w = Math.floor((t - t0) / 1000);
    if (w < windows) {
      if (t > t0) perWindow[w]++;
      requestAnimationFrame(step);
      return;
    }
    long.push(...po.takeRecords());
    po.disconnect();
    d.grid.update = upd; d.grid.flush = fl;
    const secs = (t - t0) / 1000;
    const longMs = new Array(windows).fill(0);
    for (const e of long) {
      // A task is counted in the windows it overlaps.
      for (let w = 0; w < windows; w++) {
        const a = Math.max(e.startTime, t0 + w * 1000), b = Math.min(e.startTime + e.duration, t0 + (w + 1) * 1000);
        if (b > a) longMs[w] += b - a;
      }
    }
    resolve({fps: perWindow, longMs, longTasks: long.filter((e) => e.startTime + e.duration > t0).length,
      maxFrameMs: maxGap, updates: (count() - u0) / secs, cells: (d.grid.stats.cells - c0) / secs, seconds: secs,
      updateMs: inUpdate / secs, flushMs: inFlush / secs});
  };
  requestAnimationFrame(step);
})`

// The frame budget of 500 symbols streaming from the simulator at 20,000
// updates/s (each capped at the server's 20 Hz per symbol): measured over
// 5 s after a warm-up. The batched renderer must hold the budget; the
// unbatched one (?paint=naive: every update painted at once, every row)
// must break it, or the budget proves nothing.
func TestDashboardFrameBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: 500 symbols at 20,000 updates/s")
	}
	srv := startTickerd(t, "-feed", "sim", "-sim-symbols", "500", "-sim-rate", "20000", "-sim-seed", "1")
	var list struct{ Symbols []string }
	resp, err := srv.hc.Get(srv.base + "/v1/symbols")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if err != nil || len(list.Symbols) != 500 {
		t.Fatalf("symbols: %d, %v", len(list.Symbols), err)
	}
	run := func(t *testing.T, query string) frames {
		p := newPage(t, srv.base+"/?"+query+"symbols="+url.QueryEscape(strings.Join(list.Symbols, ",")))
		p.do(chromedp.EmulateViewport(1280, 720))
		waitLive(t, p)
		waitFor(t, 20*time.Second, "500 records", func() string {
			var n int
			p.eval(`Object.keys(dashboard.client.snapshot()).length`, &n)
			if n < 500 {
				return fmt.Sprintf("%d records", n)
			}
			return ""
		})
		time.Sleep(2 * time.Second) // warm up
		var f frames
		m0 := p.metrics()
		p.evalAsync(fmt.Sprintf(measureJS, 5), 60*time.Second, &f)
		m1 := p.metrics()
		busy := func(name string) float64 { return 1000 * (m1[name] - m0[name]) / f.Seconds }
		f.TaskMs, f.ScriptMs, f.LayoutMs, f.StyleMs = busy("TaskDuration"), busy("ScriptDuration"), busy("LayoutDuration"), busy("RecalcStyleDuration")
		t.Logf("%s: median %.1f fps %v, median %.0f ms/s in long tasks %v (%d tasks), longest frame %.0f ms; "+
			"%.0f updates/s, %.0f cells/s; main thread busy %.0f ms/s (script %.0f, layout %.0f, style %.0f; grid update %.0f, flush %.0f)",
			query, median(f.FPS), f.FPS, median(f.LongMs), f.LongMs, f.LongTasks, f.MaxFrameMs, f.Updates, f.Cells,
			f.TaskMs, f.ScriptMs, f.LayoutMs, f.StyleMs, f.UpdateMs, f.FlushMs)
		if query == "" {
			p.shot("dashboard-500-symbols")
		}
		return f
	}
	// The budget, on the medians of five one-second windows (a burst
	// from another process on the shared VM moves one window, not the
	// median): at least 15 fps, at most 400 ms a second in long tasks.
	// Measured figures of both renderers: docs/performance.md.
	const minFPS, maxLongMs = 15, 400
	within := func(f frames) string {
		if fps := median(f.FPS); fps < minFPS {
			return fmt.Sprintf("median %.1f fps < %d", fps, minFPS)
		}
		if ms := median(f.LongMs); ms > maxLongMs {
			return fmt.Sprintf("median %.0f ms/s in long tasks > %d", ms, maxLongMs)
		}
		return ""
	}
	// DASH_EXTRA="bgHz=20 ..." measures more page variants, logged only
	// (docs/performance.md).
	for _, q := range strings.Fields(os.Getenv("DASH_EXTRA")) {
		t.Run(q, func(t *testing.T) { run(t, q+"&") })
	}
	t.Run("batched", func(t *testing.T) {
		f := run(t, "")
		if f.Updates < 500 {
			t.Fatalf("only %.0f updates/s reached the page: not the load this test is about", f.Updates)
		}
		if why := within(f); why != "" {
			t.Errorf("over the frame budget: %s", why)
		}
	})
	t.Run("unbatched", func(t *testing.T) {
		f := run(t, "paint=naive&")
		if why := within(f); why == "" {
			t.Errorf("the unbatched renderer meets the budget too (median %.1f fps, %.0f ms/s in long tasks): the budget catches nothing", median(f.FPS), median(f.LongMs))
		}
	})
}

// Named watchlists: + names a new one in place, [ and ] switch, ?list=
// opens one, F2 renames it, − deletes it on a second press; all of it is
// kept in localStorage.
func TestDashboardWatchlists(t *testing.T) {
	s := newServer(t, stream.Config{})
	s.ingest(1, "AAA", "BBB", "CCC")
	p := newPage(t, s.base+"/?symbols=AAA,BBB")
	waitLive(t, p)
	tabs := func(p *page) (names []string, active string) {
		var v struct {
			Names  []string
			Active string
		}
		p.eval(`({names: [...document.querySelectorAll('#lists button.tab:not(.new):not(.del)')].map((b) => b.textContent),
			active: document.querySelector('#lists .tab[aria-pressed=true]')?.textContent ?? ''})`, &v)
		return v.Names, v.Active
	}
	wantRows := func(p *page, what string, rows ...string) {
		t.Helper()
		waitFor(t, 5*time.Second, what, func() string {
			if o := p.order(); !slices.Equal(o, rows) {
				return fmt.Sprintf("rows %v, want %v", o, rows)
			}
			return ""
		})
	}
	if names, active := tabs(p); !slices.Equal(names, []string{"Shared"}) || active != "Shared" {
		t.Fatalf("tabs %v (active %q), want the shared list", names, active)
	}
	p.do(chromedp.Click(chromedp.CSS("#lists .tab.new")), chromedp.KeyEvent("Tech"+kb.Enter))
	if names, active := tabs(p); !slices.Equal(names, []string{"Shared", "Tech"}) || active != "Tech" {
		t.Fatalf("after + Tech: tabs %v (active %q)", names, active)
	}
	wantRows(p, "new list empty")
	if p.text("#empty") == "" {
		t.Error("an empty list shows no hint")
	}
	p.do(chromedp.KeyEvent("ccc" + kb.Enter)) // the add box has the focus
	wantRows(p, "CCC in Tech", "CCC")
	p.do(chromedp.KeyEvent(kb.Escape), chromedp.KeyEvent("["))
	wantRows(p, "[ back to Shared", "AAA", "BBB")
	p.do(chromedp.KeyEvent("]"))
	wantRows(p, "] to Tech", "CCC")

	p2 := newPage(t, s.base+"/?list=Tech")
	waitLive(t, p2)
	wantRows(p2, "?list=Tech", "CCC")
	p2.eval(`document.querySelector('#lists .tab[aria-pressed=true]').focus(), true`, nil)
	p2.do(chromedp.KeyEvent(kb.F2), chromedp.KeyEvent(strings.Repeat(kb.Backspace, 4)+"Growth"+kb.Enter))
	if names, active := tabs(p2); !slices.Equal(names, []string{"Shared", "Growth"}) || active != "Growth" {
		t.Fatalf("after F2 Growth: tabs %v (active %q)", names, active)
	}
	p2.do(chromedp.Click(chromedp.CSS("#lists .tab.del")))
	if names, _ := tabs(p2); len(names) != 2 {
		t.Fatalf("one press of − deleted the list: tabs %v", names)
	}
	p2.do(chromedp.Click(chromedp.CSS("#lists .tab.del")))
	if names, active := tabs(p2); !slices.Equal(names, []string{"Shared"}) || active != "Shared" {
		t.Fatalf("after deleting: tabs %v (active %q)", names, active)
	}
	wantRows(p2, "back on Shared", "AAA", "BBB")
	var saved string
	p2.eval(`localStorage.getItem('tickerd.watchlists.v1')`, &saved)
	if saved != `{"active":"Shared","lists":[{"name":"Shared","symbols":["AAA","BBB"]}]}` {
		t.Errorf("localStorage %s", saved)
	}
}

// modulesJS runs the dashboard's pure modules in the page and returns a
// list of failures: the autocomplete index, the bounded history, the
// latency median, the watchlists' storage and the decimal formatting.
const modulesJS = `(async () => {
  const fails = [];
  const check = (what, got, want) => {
    if (JSON.stringify(got) !== JSON.stringify(want)) fails.push(what + ': got ' + JSON.stringify(got) + ', want ' + JSON.stringify(want));
  };
  const { SymbolIndex } = await import('/symbols.js');
  const names = [];
  for (let i = 0; i < 5000; i++) names.push('S' + String(i).padStart(4, '0'));
  names.push('AAPL', 'AAL', 'XAAP', 'AAPL');
  const idx = new SymbolIndex(names);
  check('index size (deduplicated)', idx.size, 5003);
  check('prefix first, then substring', idx.search('aap', 10), ['AAPL', 'XAAP']);
  check('capped', idx.search('S1', 5), ['S1000', 'S1001', 'S1002', 'S1003', 'S1004']);
  check('substring after prefix', idx.search('999', 3), ['S0999', 'S1999', 'S2999']);
  check('has', [idx.has('AAL'), idx.has('AA')], [true, false]);

  const { History, FINE_POINTS, COARSE_POINTS, MAX_TICKS } = await import('/history.js');
  const h = new History();
  const t0 = Date.UTC(2026, 0, 5, 14, 30);
  for (let s = 0; s < 6 * 3600; s += 2) {
    h.price(t0 + s * 1000, 100 + s / 1000);
    h.tick(t0 + s * 1000, { bid: '1', ask: '2' }, ['bid']);
  }
  if (h.fine.times.length > FINE_POINTS + 64) fails.push('fine tier grew to ' + h.fine.times.length);
  if (h.coarse.times.length > COARSE_POINTS + 64) fails.push('coarse tier grew to ' + h.coarse.times.length);
  if (h.ticks.length > 2 * MAX_TICKS) fails.push('ticks grew to ' + h.ticks.length);
  const sp = h.series(96);
  if (sp.prices.length > 96 || sp.times.length !== sp.prices.length) fails.push('series of ' + sp.prices.length + ' points');
  check('series ends at the last price', sp.prices[sp.prices.length - 1], 100 + (6 * 3600 - 2) / 1000);
  check('series reaches back to the start', sp.times[0] <= t0 + 300000, true);
  check('series in time order', sp.times.every((t, i) => i === 0 || t > sp.times[i - 1]), true);
  check('recent ticks newest first', h.recent(2).map((x) => x.t), [t0 + (6 * 3600 - 2) * 1000, t0 + (6 * 3600 - 4) * 1000]);

  const { Stats } = await import('/stats.js');
  const st = new Stats();
  for (let i = 1; i <= 99; i++) st.record(i);
  st.record(undefined);
  st.roll();
  check('p50 of 1..99', st.p50(), 50);
  check('rate counts every change', st.rate(1), 100);
  for (let i = 0; i < 70; i++) { st.record(1000); st.roll(); }
  check('p50 forgets after a minute', st.p50(), 1000);

  const { Watchlists, STORAGE_KEY } = await import('/watchlists.js');
  const mem = new Map();
  const store = { getItem: (k) => mem.get(k) ?? null, setItem: (k, v) => mem.set(k, v) };
  let w = new Watchlists(store);
  check('empty at first', w.empty, true);
  w.put('Main', ['aapl', 'MSFT', 'bad symbol!', 'MSFT']);
  check('put normalizes', w.symbols(), ['AAPL', 'MSFT']);
  check('add returns the new', w.add('msft', 'ibm', '', 'x y'), ['IBM']);
  w.move('IBM', 0);
  check('move', w.symbols(), ['IBM', 'AAPL', 'MSFT']);
  w.remove('AAPL');
  check('create picks a free name', w.create('Main'), 'Main 2');
  w = new Watchlists(store);
  check('reloaded', [w.names(), w.activeName, w.find('Main').symbols], [['Main', 'Main 2'], 'Main 2', ['IBM', 'MSFT']]);
  mem.set(STORAGE_KEY, '{not json');
  check('corrupt storage starts afresh', new Watchlists(store).empty, true);
  const full = { getItem: () => null, setItem: () => { throw new Error('quota'); } };
  const wf = new Watchlists(full);
  wf.put('Main', ['AAPL']);
  check('storage refusing writes', wf.symbols(), ['AAPL']);

  const f = await import('/format.js');
  check('fixed', [f.fixed('189.1'), f.fixed('189'), f.fixed('0.12345')], ['189.10', '189.00', '0.12345']);
  check('grouped', [f.grouped('1234567'), f.grouped('-1234.5')], ['1,234,567', '-1,234.5']);
  check('signed', [f.signed('0.5'), f.signed('-0.5'), f.signed('0.00')], ['+0.5', '-0.5', '0.00']);
  check('cmp', [f.cmp('100.1', '100.09'), f.cmp('-1', '0'), f.cmp('2.50', '2.5'), f.cmp('99.99', '100')], [1, -1, 0, -1]);
  return fails;
})()`

// The dashboard's modules hold their contracts: autocomplete order and
// cap, bounded history, the latency median, watchlist storage, decimals.
func TestDashboardModules(t *testing.T) {
	s := newServer(t, stream.Config{})
	p := newPage(t, s.base+"/?symbols=AAA")
	var fails []string
	p.evalAsync(modulesJS, 30*time.Second, &fails)
	for _, f := range fails {
		t.Error(f)
	}
}
