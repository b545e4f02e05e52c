package simulator

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"tickerd/feed"
)

// indexedCapture writes n simulated updates spread over span, some of them
// stamped back in time as snapshots of a recording are, to a capture file
// with its index, and returns the path and the updates.
func indexedCapture(t testing.TB, n int, span time.Duration) (string, []feed.Update) {
	t.Helper()
	updates := simUpdates(t, Config{Symbols: 20}, n)
	start := time.Unix(1_700_000_000, 0).UnixMicro()
	step := span.Microseconds() / int64(n)
	for i := range updates {
		updates[i].TS = start + int64(i)*step
		if i%97 == 50 {
			updates[i].TS -= 3_000_000 // 3 s behind: a late snapshot
		}
	}
	path := filepath.Join(t.TempDir(), "cap.zst")
	writeCaptureFile(t, path, updates)
	return path, updates
}

// firstAtOrAfter returns the index of the first update with ts ≥ from, as
// a scan finds it (len(updates) if none).
func firstAtOrAfter(updates []feed.Update, from int64) int {
	for i := range updates {
		if updates[i].TS >= from {
			return i
		}
	}
	return len(updates)
}

// readFrom reads everything from r and closes it.
func readFrom(t testing.TB, r *CaptureReader) ([]feed.Update, error) {
	t.Helper()
	defer r.Close()
	var out []feed.Update
	for {
		var u feed.Update
		switch err := r.Next(&u); {
		case errors.Is(err, io.EOF):
			return out, nil
		case err != nil:
			return out, err
		}
		out = append(out, u)
	}
}

func TestCaptureFramesAndIndex(t *testing.T) {
	path, updates := indexedCapture(t, 6000, 20*time.Second)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := ReadIndexFile(path, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if len(idx) < 15 || len(idx) > 25 {
		t.Fatalf("%d frames for 20 s of capture, want about one a second", len(idx))
	}
	if idx.end() != int64(len(data)) || idx.updatesBefore(len(idx)) != int64(len(updates)) {
		t.Fatalf("index covers %d bytes and %d updates of %d and %d", idx.end(), idx.updatesBefore(len(idx)), len(data), len(updates))
	}
	// Each frame decodes on its own to the updates the index says.
	n := 0
	for i, e := range idx {
		got, err := readCapture(t, data[e.Offset:e.Offset+e.Size])
		if err != nil || int64(len(got)) != e.Updates {
			t.Fatalf("frame %d read alone: %d updates, %v; index says %d", i, len(got), err, e.Updates)
		}
		if got[0].TS != e.First || got[len(got)-1].TS != e.Last || !sameUpdate(&got[0], &updates[n]) {
			t.Fatalf("frame %d: first/last ts %d/%d, index %d/%d", i, got[0].TS, got[len(got)-1].TS, e.First, e.Last)
		}
		n += len(got)
	}
	sum, err := SummarizeFile(path)
	if err != nil {
		t.Fatal(err)
	}
	scanned, err := Summarize(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if sum != scanned {
		t.Errorf("summary from the index %+v, by scanning %+v", sum, scanned)
	}
}

func TestOpenCaptureAt(t *testing.T) {
	path, updates := indexedCapture(t, 6000, 20*time.Second)
	first, last := updates[0].TS, updates[len(updates)-1].TS
	froms := map[string]int64{
		"before the start": first - 1,
		"the start":        first,
		"middle":           first + 10_000_000 + 1,
		"a line's ts":      updates[3333].TS,
		"late snapshot":    updates[3153].TS, // i%97 == 50: 3 s behind its neighbours
		"the last":         last,
		"after the last":   last + 1,
	}
	noIndex := filepath.Join(t.TempDir(), "plain.zst")
	copyFile(t, path, noIndex)
	for name, from := range froms {
		t.Run(name, func(t *testing.T) {
			want := updates[firstAtOrAfter(updates, from):]
			for _, tc := range []struct {
				path    string
				indexed bool
			}{{path, true}, {noIndex, false}} {
				r, err := OpenCaptureAt(tc.path, from)
				if err != nil {
					t.Fatal(err)
				}
				got, err := readFrom(t, r)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(want) {
					t.Fatalf("indexed=%v: read %d updates from %d, want %d", tc.indexed, len(got), from, len(want))
				}
				for i := range got {
					if !sameUpdate(&got[i], &want[i]) {
						t.Fatalf("indexed=%v: update %d differs", tc.indexed, i)
					}
				}
				st := r.SeekStats()
				skippedByScan := int64(len(updates) - len(want))
				switch {
				case st.IndexErr != nil:
					t.Errorf("IndexErr %v", st.IndexErr)
				case st.Indexed != tc.indexed:
					t.Errorf("Indexed = %v, want %v", st.Indexed, tc.indexed)
				case !tc.indexed && st.Skipped != skippedByScan:
					t.Errorf("scan skipped %d updates, want %d", st.Skipped, skippedByScan)
				case tc.indexed && st.Skipped > 600:
					t.Errorf("with the index %d updates were skipped (a frame holds about 300)", st.Skipped)
				}
				t.Logf("indexed=%v: started at byte %d, skipped %d updates", tc.indexed, st.Offset, st.Skipped)
			}
		})
	}
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A damaged index is never trusted beyond what it can show; the result is
// the same as a scan's, or the capture's own clear error.
func TestOpenCaptureAtDamaged(t *testing.T) {
	path, updates := indexedCapture(t, 6000, 20*time.Second)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	index, err := os.ReadFile(IndexPath(path))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := indexedCapture(t, 3000, 20*time.Second)
	otherIndex, err := os.ReadFile(IndexPath(other))
	if err != nil {
		t.Fatal(err)
	}
	from := updates[4000].TS
	tests := []struct {
		name         string
		capture      []byte
		index        []byte
		wantIndexErr string // "" when the index is used
		wantErr      string // "" when the read ends cleanly
	}{
		{"index cut mid-line", data, index[:len(index)*2/3], "", ""},
		{"index cut to its header", data, index[:len(indexHeader)], "", ""},
		{"empty index", data, nil, "not a capture index", ""},
		{"garbage index", data, []byte("hello\nworld\n"), "not a capture index", ""},
		{"bad line", data, append(bytes.Clone(index[:len(indexHeader)]), "0 12 x 1 2 3\n"...), "line 2", ""},
		{"frames not contiguous", data, []byte(indexHeader + "0 100 10 1 2 3\n150 100 10 4 5 6\n"), "contiguous", ""},
		{"another capture's index", data, otherIndex, "does not match", ""},
		{"capture cut short", data[:len(data)*3/4], index, "", "truncated capture"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "cap.zst")
			if err := os.WriteFile(p, tt.capture, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(IndexPath(p), tt.index, 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := OpenCaptureAt(p, from)
			if err != nil {
				t.Fatal(err)
			}
			got, err := readFrom(t, r)
			st := r.SeekStats()
			if tt.wantIndexErr == "" && st.IndexErr != nil || tt.wantIndexErr != "" && (st.IndexErr == nil || !strings.Contains(st.IndexErr.Error(), tt.wantIndexErr)) {
				t.Errorf("IndexErr %v, want %q", st.IndexErr, tt.wantIndexErr)
			}
			if tt.wantErr != "" {
				var ce *CaptureError
				if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("read: %v, want a *CaptureError about %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			want := updates[4000:]
			if tt.wantErr == "" && len(got) != len(want) || len(got) > len(want) {
				t.Fatalf("read %d updates, want %d", len(got), len(want))
			}
			for i := range got {
				if !sameUpdate(&got[i], &want[i]) {
					t.Fatalf("update %d differs", i)
				}
			}
		})
	}
}

// A capture written before frames and indexes (one zstd frame) still
// reads, seeks by scanning, and summarizes.
func TestOpenCaptureAtSingleFrame(t *testing.T) {
	updates := simUpdates(t, Config{Symbols: 5}, 500)
	var text strings.Builder
	for i := range updates {
		b, err := appendLine(nil, &updates[i], true)
		if err != nil {
			t.Fatal(err)
		}
		text.Write(b)
	}
	path := filepath.Join(t.TempDir(), "old.zst")
	if err := os.WriteFile(path, compress(t, text.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := OpenCaptureAt(path, updates[250].TS)
	if err != nil {
		t.Fatal(err)
	}
	got, err := readFrom(t, r)
	if err != nil || len(got) != 250 || !sameUpdate(&got[0], &updates[250]) {
		t.Fatalf("read %d updates (%v), want 250 from update 250", len(got), err)
	}
	sum, err := SummarizeFile(path)
	if err != nil || sum.Updates != 500 || sum.First != updates[0].TS || sum.Last != updates[499].TS {
		t.Errorf("SummarizeFile = %+v, %v", sum, err)
	}
	if ts, err := FirstTS(path); err != nil || ts != updates[0].TS {
		t.Errorf("FirstTS = %d, %v; want %d", ts, err, updates[0].TS)
	}
}

func TestReadIndex(t *testing.T) {
	h := indexHeader
	tests := []struct {
		name string
		text string
		size int64
		want int    // entries
		err  string // "" for none
	}{
		{"header only", h, -1, 0, ""},
		{"two frames", h + "0 10 3 5 7 7\n10 20 1 8 8 8\n", -1, 2, ""},
		{"spaces and tabs", h + " 0\t10 3 5 7 7 \n", -1, 1, ""},
		{"last line cut", h + "0 10 3 5 7 7\n10 20 1 8", -1, 1, ""},
		{"capture shorter", h + "0 10 3 5 7 7\n10 20 1 8 8 8\n", 29, 1, ""},
		{"no header", "0 10 3 5 7 7\n", -1, 0, "not a capture index"},
		{"other version", "tickerd capture index 2\n", -1, 0, "not a capture index"},
		{"five numbers", h + "0 10 3 5 7\n", -1, 0, "want 6 numbers"},
		{"negative", h + "0 10 3 -5 7 7\n", -1, 0, "not a whole number"},
		{"overflow", h + "0 10 3 5 7 99999999999999999999\n", -1, 0, "not a whole number"},
		{"not from zero", h + "5 10 3 5 7 7\n", -1, 0, "want 0"},
		{"gap", h + "0 10 3 5 7 7\n11 20 1 8 8 8\n", -1, 0, "contiguous"},
		{"empty frame", h + "0 10 0 5 7 7\n", -1, 0, "holds 0 updates"},
		{"zero ts", h + "0 10 1 0 7 7\n", -1, 0, "positive"},
		{"high below last", h + "0 10 3 5 7 6\n", -1, 0, "below the frame"},
		{"high goes back", h + "0 10 3 5 7 9\n10 20 1 8 8 8\n", -1, 0, "below the previous"},
		{"long line", h + strings.Repeat("1", 300) + "\n", -1, 0, "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idx, err := ReadIndex(strings.NewReader(tt.text), tt.size)
			if tt.err != "" {
				var ie *IndexError
				if !errors.As(err, &ie) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want an *IndexError about %q", err, tt.err)
				}
				return
			}
			if err != nil || len(idx) != tt.want {
				t.Fatalf("read %d entries, %v; want %d", len(idx), err, tt.want)
			}
		})
	}
}

// FuzzReadIndex reads arbitrary bytes as an index: never a panic, and what
// it accepts is contiguous, ordered and writes back the same.
func FuzzReadIndex(f *testing.F) {
	var buf, idx bytes.Buffer
	w, err := NewIndexedCaptureWriter(&buf, &idx)
	if err != nil {
		f.Fatal(err)
	}
	for _, u := range simUpdates(f, Config{Symbols: 3}, 50) {
		u.TS *= 100 // 100 ms apart: several frames
		if err := w.Write(&u); err != nil {
			f.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		f.Fatal(err)
	}
	f.Add(idx.Bytes(), int64(buf.Len()))
	f.Add([]byte(indexHeader+"0 10 3 5 7 7\n10 20 1 8"), int64(-1))
	f.Fuzz(func(t *testing.T, data []byte, size int64) {
		got, err := ReadIndex(bytes.NewReader(data), size)
		if err != nil {
			var ie *IndexError
			if !errors.As(err, &ie) || ie.Line < 1 {
				t.Fatalf("error %v (%T) does not name a line", err, err)
			}
			return
		}
		back := []byte(indexHeader)
		var next, high int64
		for i, e := range got {
			if e.Offset != next || e.Size <= 0 || e.Updates <= 0 || e.High < high || e.High < e.First || e.High < e.Last {
				t.Fatalf("entry %d accepted: %+v after offset %d high %d", i, e, next, high)
			}
			if size >= 0 && e.Offset+e.Size > size {
				t.Fatalf("entry %d ends past the capture's %d bytes", i, size)
			}
			next, high = e.Offset+e.Size, e.High
			back = e.appendText(back)
		}
		again, err := ReadIndex(bytes.NewReader(back), size)
		if err != nil || len(again) != len(got) {
			t.Fatalf("written back: %d entries, %v; want %d", len(again), err, len(got))
		}
		for i := range got {
			if again[i] != got[i] {
				t.Fatalf("entry %d: %+v written back reads %+v", i, got[i], again[i])
			}
		}
	})
}

// The zstd frames of a capture are independent: a decoder started at any
// frame's offset reads from there.
func TestCaptureFramesIndependent(t *testing.T) {
	path, _ := indexedCapture(t, 3000, 10*time.Second)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := ReadIndexFile(path, int64(len(data)))
	if err != nil || len(idx) < 5 {
		t.Fatalf("index of %d frames, %v", len(idx), err)
	}
	dec, err := zstd.NewReader(bytes.NewReader(data[idx[5].Offset:]))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	text, err := io.ReadAll(dec)
	if err != nil {
		t.Fatal(err)
	}
	if want := idx.updatesBefore(len(idx)) - idx.updatesBefore(5); int64(bytes.Count(text, []byte("\n"))) != want {
		t.Errorf("decoding from frame 5 gave %d lines, want %d", bytes.Count(text, []byte("\n")), want)
	}
}

// FuzzOpenCaptureAt seeks a real capture with an arbitrary index: never a
// panic, and never an update before the time sought.
func FuzzOpenCaptureAt(f *testing.F) {
	path, updates := indexedCapture(f, 600, 6*time.Second)
	index, err := os.ReadFile(IndexPath(path))
	if err != nil {
		f.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(index, updates[300].TS-updates[0].TS)
	f.Add([]byte(indexHeader+"0 10 3 5 7 7\n"), int64(1))
	f.Fuzz(func(t *testing.T, index []byte, offset int64) {
		p := filepath.Join(t.TempDir(), "cap.zst")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(IndexPath(p), index, 0o644); err != nil {
			t.Fatal(err)
		}
		from := updates[0].TS + offset%(8*time.Second).Microseconds()
		r, err := OpenCaptureAt(p, from)
		if err != nil {
			t.Fatal(err)
		}
		got, err := readFrom(t, r)
		if err != nil {
			return // a lying index may start mid-frame: a clear error is fine
		}
		if len(got) > len(updates) || len(got) > 0 && from > 0 && got[0].TS < from {
			t.Fatalf("read %d updates from %d, the first at %d", len(got), from, got[0].TS)
		}
	})
}
