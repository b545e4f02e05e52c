package simulator

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"tickerd/feed"
)

// A capture's index is a text file beside it, CAPTURE.idx, that lists the
// capture's zstd frames so a reader can start at the frame holding a given
// time instead of decompressing everything before it. Its first line is
// indexHeader; then one line per frame, in the order of the frames:
//
//	OFFSET SIZE UPDATES FIRST LAST HIGH
//
// (decimal integers: the byte offset of the frame in the capture and its
// compressed size, the updates it holds, the ts of its first and last
// update, and the highest ts in this frame and every one before it). The
// frames are contiguous from offset 0. The writer adds a line as each
// frame ends, so the index of a capture still being written, or of one cut
// short by a crash, lists the frames finished so far; a reader scans on
// from the last one listed.
const indexHeader = "tickerd capture index 1\n"

// maxIndexLine bounds one line of an index, in bytes.
const maxIndexLine = 256

// ErrNoIndex is returned by ReadIndexFile when the capture has no index.
var ErrNoIndex = errors.New("simulator: capture has no index")

// IndexError is an index that cannot be used. Line is 1-based.
type IndexError struct {
	Line int
	Err  error
}

func (e *IndexError) Error() string { return fmt.Sprintf("capture index line %d: %v", e.Line, e.Err) }
func (e *IndexError) Unwrap() error { return e.Err }

// IndexEntry describes one zstd frame of a capture.
type IndexEntry struct {
	Offset  int64 // byte offset of the frame in the capture
	Size    int64 // compressed bytes of the frame
	Updates int64 // updates in the frame
	First   int64 // ts of its first update, Unix µs
	Last    int64 // ts of its last update
	High    int64 // highest ts of this frame and every frame before it
}

// appendText appends e as one index line.
func (e IndexEntry) appendText(b []byte) []byte {
	for i, v := range [...]int64{e.Offset, e.Size, e.Updates, e.First, e.Last, e.High} {
		if i > 0 {
			b = append(b, ' ')
		}
		b = strconv.AppendInt(b, v, 10)
	}
	return append(b, '\n')
}

// Index is a capture's frames in order, as ReadIndex returns them.
type Index []IndexEntry

// ReadIndex reads an index. captureSize is the size of the capture in
// bytes (negative: unknown): frames that end past it are left out, as is a
// last line without its newline (both happen when the capture was cut
// short). Anything else that does not hold is an *IndexError.
func ReadIndex(r io.Reader, captureSize int64) (Index, error) {
	br := bufio.NewReaderSize(r, 4096)
	header, err := br.ReadString('\n')
	if header != indexHeader {
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, &IndexError{Line: 1, Err: err}
		}
		return nil, &IndexError{Line: 1, Err: fmt.Errorf("not a capture index: want %q", strings.TrimSpace(indexHeader))}
	}
	var idx Index
	var next int64 // offset the next frame must start at
	for line := 2; ; line++ {
		b, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, io.EOF):
			return idx, nil // a last line without newline was cut short: left out
		case errors.Is(err, bufio.ErrBufferFull) || len(b) > maxIndexLine:
			return nil, &IndexError{Line: line, Err: fmt.Errorf("longer than %d bytes", maxIndexLine)}
		case err != nil:
			return nil, &IndexError{Line: line, Err: err}
		}
		e, err := parseIndexLine(b[:len(b)-1])
		if err == nil {
			err = e.check(next, idx)
		}
		if err != nil {
			return nil, &IndexError{Line: line, Err: err}
		}
		if captureSize >= 0 && e.Offset+e.Size > captureSize {
			return idx, nil
		}
		idx = append(idx, e)
		next = e.Offset + e.Size
	}
}

// parseIndexLine parses "OFFSET SIZE UPDATES FIRST LAST HIGH".
func parseIndexLine(b []byte) (IndexEntry, error) {
	f := strings.Fields(string(b))
	if len(f) != 6 {
		return IndexEntry{}, fmt.Errorf("want 6 numbers (offset size updates first last high), got %d fields", len(f))
	}
	var v [6]int64
	for i, s := range f {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return IndexEntry{}, fmt.Errorf("field %d: %q is not a whole number", i+1, s)
		}
		v[i] = n
	}
	return IndexEntry{Offset: v[0], Size: v[1], Updates: v[2], First: v[3], Last: v[4], High: v[5]}, nil
}

// check reports what is wrong with e as the frame after those in prev,
// which must start at offset next.
func (e IndexEntry) check(next int64, prev Index) error {
	switch {
	case e.Offset != next:
		return fmt.Errorf("frame at offset %d, want %d (frames are contiguous)", e.Offset, next)
	case e.Size <= 0 || e.Size > maxCaptureWindow+FrameBytes:
		return fmt.Errorf("frame size %d out of range", e.Size)
	case e.Updates <= 0 || e.Updates > FrameBytes:
		return fmt.Errorf("frame holds %d updates", e.Updates)
	case e.First <= 0 || e.Last <= 0:
		return errors.New("ts must be positive")
	case e.High < e.First || e.High < e.Last:
		return fmt.Errorf("high %d below the frame's ts", e.High)
	case len(prev) > 0 && e.High < prev[len(prev)-1].High:
		return fmt.Errorf("high %d below the previous frame's %d", e.High, prev[len(prev)-1].High)
	}
	return nil
}

// ReadIndexFile reads the index of the capture at path (path+".idx"),
// given the capture's size. It returns ErrNoIndex when there is none.
func ReadIndexFile(path string, captureSize int64) (Index, error) {
	f, err := os.Open(IndexPath(path))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoIndex
	}
	if err != nil {
		return nil, fmt.Errorf("simulator: open capture index: %w", err)
	}
	defer f.Close()
	return ReadIndex(f, captureSize)
}

// find returns the first frame whose High is at or after ts: the frame
// holding the first update with ts at or after ts, if any is indexed
// (len(idx) if none is).
func (idx Index) find(ts int64) int {
	return sort.Search(len(idx), func(i int) bool { return idx[i].High >= ts })
}

// updatesBefore returns the updates in the frames before frame i.
func (idx Index) updatesBefore(i int) int64 {
	var n int64
	for _, e := range idx[:i] {
		n += e.Updates
	}
	return n
}

// end returns the offset just past the last indexed frame.
func (idx Index) end() int64 {
	if len(idx) == 0 {
		return 0
	}
	last := idx[len(idx)-1]
	return last.Offset + last.Size
}

// SeekStats says how OpenCaptureAt found the start it was asked for.
type SeekStats struct {
	Offset   int64 // byte offset in the capture where decompression began
	Indexed  bool  // the index took the reader there
	IndexErr error // why the index was not used, when it exists but is unusable
	Skipped  int64 // updates read and passed over before the first delivered
}

// OpenCaptureAt opens the capture at path so that its first update read
// is the first one in the file whose ts is at or after from (Unix µs;
// from ≤ 0 means the start); every update after it follows, in file
// order, whatever its ts. With a usable index it decompresses only from
// the frame holding that update; without one, or when the index is
// damaged or does not match the capture, it reads the capture from the
// start (SeekStats says which). Close also closes the file.
func OpenCaptureAt(path string, from int64) (*CaptureReader, error) {
	if from <= 0 {
		return OpenCapture(path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("simulator: open capture: %w", err)
	}
	idx, ierr := ReadIndexFile(path, fi.Size())
	if errors.Is(ierr, ErrNoIndex) {
		ierr = nil
	} else if ierr == nil && len(idx) > 0 {
		i := idx.find(from)
		off, before, first := idx.end(), idx.updatesBefore(len(idx)), int64(0)
		if i < len(idx) {
			off, before, first = idx[i].Offset, idx.updatesBefore(i), idx[i].First
		}
		r, err := openCaptureAt(path, off, before, from)
		if err != nil {
			return nil, err
		}
		if first == 0 || r.peekMatches(first) {
			r.seek.Indexed = true
			return r, nil
		}
		r.Close()
		ierr = fmt.Errorf("simulator: capture index does not match the capture at offset %d", off)
	}
	r, err := openCaptureAt(path, 0, 0, from)
	if err != nil {
		return nil, err
	}
	r.seek.IndexErr = ierr
	return r, nil
}

// openCaptureAt opens the capture at path, decompressing from offset off,
// where before updates (lines) precede, skipping updates before from.
func openCaptureAt(path string, off, before, from int64) (*CaptureReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("simulator: open capture: %w", err)
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("simulator: seek capture: %w", err)
	}
	r, err := NewCaptureReader(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.file, r.line, r.from = f, int(before), from
	r.seek.Offset = off
	return r, nil
}

// FirstTS returns the ts of the first update of the capture at path.
func FirstTS(path string) (int64, error) {
	r, err := OpenCapture(path)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	var u feed.Update
	switch err := r.Next(&u); {
	case errors.Is(err, io.EOF):
		return 0, fmt.Errorf("simulator: capture %s is empty", path)
	case err != nil:
		return 0, err
	}
	return u.TS, nil
}

// SummarizeFile returns the Summary of the capture at path: from its index
// when that lists the whole file, else by reading it through (Summarize).
func SummarizeFile(path string) (Summary, error) {
	return SummarizeFileContext(context.Background(), path)
}

// SummarizeFileContext is SummarizeFile, giving up with ctx.Err() when
// ctx ends while it reads the capture through.
func SummarizeFileContext(ctx context.Context, path string) (Summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return Summary{}, fmt.Errorf("simulator: open capture: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Summary{}, fmt.Errorf("simulator: open capture: %w", err)
	}
	if idx, err := ReadIndexFile(path, fi.Size()); err == nil && len(idx) > 0 && idx.end() == fi.Size() {
		return Summary{Updates: idx.updatesBefore(len(idx)), First: idx[0].First, Last: idx[len(idx)-1].Last}, nil
	}
	return summarize(ctx, f)
}
