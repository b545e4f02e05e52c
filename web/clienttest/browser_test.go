package clienttest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumNames are the executables tried, in order; $CHROMIUM overrides.
var chromiumNames = []string{
	"chromium", "chromium-browser", "chromium-headless-shell", "headless_shell",
	"google-chrome", "google-chrome-stable",
}

// findChromium returns the browser's path, or "".
func findChromium() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		if p, err := exec.LookPath(p); err == nil {
			return p
		}
		return ""
	}
	for _, name := range chromiumNames {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// inCI reports whether the suite runs in CI, where a missing browser is a
// failure rather than a reason to skip.
func inCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "0" && !strings.EqualFold(v, "false")
}

// browser is one headless Chromium shared by the package's tests; each
// test opens its own tab.
var browser struct {
	once   sync.Once
	ctx    context.Context // the browser's context; nil if none
	cancel func()
	err    error
}

func startBrowser() {
	path := findChromium()
	if path == "" {
		tried := strings.Join(chromiumNames, ", ")
		if env := os.Getenv("CHROMIUM"); env != "" {
			tried = "$CHROMIUM=" + env
		}
		browser.err = fmt.Errorf("no Chromium found (tried %s); make test installs one", tried)
		return
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root, where the sandbox cannot start
		chromedp.DisableGPU,
		chromedp.Flag("no-proxy-server", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	// Start the browser now, with a bound on how long a loaded machine may take.
	ready := make(chan error, 1)
	go func() { ready <- chromedp.Do(bctx) }()
	select {
	case err := <-ready:
		if err != nil {
			cancelBrowser()
			cancelAlloc()
			browser.err = fmt.Errorf("start %s: %w", path, err)
			return
		}
	case <-time.After(60 * time.Second):
		cancelBrowser()
		cancelAlloc()
		<-ready
		browser.err = fmt.Errorf("start %s: no answer in 60 s", path)
		return
	}
	browser.ctx = bctx
	browser.cancel = func() { cancelBrowser(); cancelAlloc() }
}

// stopBrowser ends the shared browser, if it was started.
func stopBrowser() {
	if browser.cancel != nil {
		browser.cancel()
	}
}

// page is one browser tab.
type page struct {
	t   testing.TB
	ctx context.Context

	mu  sync.Mutex
	log []string // console output and exceptions, shown when a test fails
}

// newPage opens a tab at url. It skips the test when there is no browser
// and CI is unset, and fails it when CI is set.
func newPage(t testing.TB, url string) *page {
	t.Helper()
	browser.once.Do(startBrowser)
	if browser.err != nil {
		if inCI() {
			t.Fatalf("browser tests need Chromium under CI: %v", browser.err)
		}
		t.Skipf("skipping browser test: %v (set CI=true to make this a failure)", browser.err)
	}
	p := &page{t: t}
	ctx, cancel := chromedp.NewContext(browser.ctx, chromedp.WithListener(func(ev any) {
		var line string
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				args = append(args, strings.Trim(string(a.Value), `"`)+a.Description)
			}
			line = fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " "))
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			line = fmt.Sprintf("exception: %s %s:%d", d.Text, d.URL, d.LineNumber+1)
			if d.Exception != nil {
				line += " " + d.Exception.Description
			}
		default:
			return
		}
		p.mu.Lock()
		p.log = append(p.log, line)
		p.mu.Unlock()
	}))
	p.ctx = ctx
	t.Cleanup(func() {
		cancel()
		if t.Failed() {
			p.mu.Lock()
			defer p.mu.Unlock()
			for _, l := range p.log {
				t.Log("page:", l)
			}
		}
	})
	// The tab lives as long as the context of its first run: give that
	// one no deadline, and bound the navigation instead.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	nctx, ncancel := context.WithTimeout(ctx, 20*time.Second)
	defer ncancel()
	if err := chromedp.Do(nctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	return p
}

// eval runs a JavaScript expression and decodes its JSON result into v
// (nil: ignore it).
func (p *page) eval(expr string, v any) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	if v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			p.t.Fatalf("evaluate %s: decode %s: %v", expr, raw, err)
		}
	}
}
