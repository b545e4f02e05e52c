// Package simulator owns the synthetic and recorded feeds of tickerd: a
// deterministic level-1 market simulator (Sim), the capture format
// (zstd-compressed NDJSON in independent frames, CaptureWriter and
// CaptureReader, with a side index, CAPTURE.idx, to start reading at a
// time: OpenCaptureAt), the pacing of a
// capture's replay (Replayer), and the two HTTP clients tickersim uses to
// talk to a tickerd: Poster (POST /v1/ingest) and Record (GET /v1/stream).
//
// simulator only produces feed.Update values and hands them to a feed.Sink
// or a function; it never keeps a symbol's latest state for others (conflate
// does), never serves HTTP, and never represents an emitted price or size
// as a float64: prices are integer tick counts turned into decimals.
package simulator
