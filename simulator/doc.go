// Package simulator owns the synthetic and recorded feeds of tickerd:
//
//   - a deterministic level-1 market simulator (Sim), with scenarios beyond
//     the steady random walk (scenario.go);
//   - the capture format: zstd-compressed NDJSON in independent frames
//     (CaptureWriter, CaptureReader), with a side index, CAPTURE.idx, from
//     which OpenCaptureAt starts reading at a time (index.go);
//   - the pacing of a capture's replay, steered while it runs (Replayer);
//   - Recorder, which records updates into hourly captures without ever
//     blocking its caller;
//   - the two HTTP clients tickersim uses to talk to a tickerd: Poster
//     (POST /v1/ingest) and Record (GET /v1/stream).
//
// simulator only produces feed.Update values and hands them to a feed.Sink
// or a function; it never keeps a symbol's latest state for others (conflate
// does), never serves HTTP, and never represents an emitted price or size
// as a float64: prices are integer tick counts turned into decimals.
package simulator
