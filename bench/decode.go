package bench

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Kind is the type of a server message, from its "type" key.
type Kind uint8

// Message kinds. KindOther is any type this package does not know.
const (
	KindOther Kind = iota
	KindSession
	KindSubscribed
	KindUnsubscribed
	KindSnapshot
	KindUpdate
	KindError
	KindPong
	KindHeartbeat
	KindClose
	numKinds
)

var kindNames = [numKinds]string{
	"other", "session", "subscribed", "unsubscribed", "snapshot", "update",
	"error", "pong", "heartbeat", "close",
}

// String returns the wire name of k ("other" for unknown types).
func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "other"
}

func kindOf(t []byte) Kind {
	switch string(t) {
	case "session":
		return KindSession
	case "subscribed":
		return KindSubscribed
	case "unsubscribed":
		return KindUnsubscribed
	case "snapshot":
		return KindSnapshot
	case "update":
		return KindUpdate
	case "error":
		return KindError
	case "pong":
		return KindPong
	case "heartbeat":
		return KindHeartbeat
	case "close":
		return KindClose
	}
	return KindOther
}

// Msg is one decoded server message: only the keys a load test reads.
// Byte slices alias the frame being decoded (or, for strings with escapes,
// a fresh copy), so a Msg is valid only during the callback that receives
// it. A key that is absent or null leaves its field zero or nil.
type Msg struct {
	Kind    Kind
	Type    []byte // "type", unescaped
	Symbol  []byte // "symbol", unescaped
	Code    []byte // "code" of error and close messages, unescaped
	Session []byte // "session" of session messages, unescaped
	Seq     int64  // "seq"
	TS      int64  // "ts", Unix microseconds
	ID      int64  // "id" of acks and errors
	Fields  []byte // "fields": the raw JSON object
	Symbols []byte // "symbols": the raw JSON value
}

// SyntaxError is a frame that is not valid JSON, or not a message or an
// array of messages, or holds a known key with a value of the wrong type.
type SyntaxError struct {
	Offset int // byte offset in the frame
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("bench: decode at byte %d: %s", e.Offset, e.Msg)
}

// maxDepth is the deepest nesting accepted, as in encoding/json.
const maxDepth = 10000

// Decoder decodes frames into one reused Msg, so that a session decodes
// without allocating. A Decoder is not safe for concurrent use.
type Decoder struct {
	m Msg
}

// DecodeFrame is Decoder.Frame with a fresh Decoder.
func DecodeFrame(data []byte, fn func(*Msg)) error {
	var d Decoder
	return d.Frame(data, fn)
}

// Frame calls fn for each message in data, which holds one message (a JSON
// object) or a JSON array of messages, as a WebSocket frame, an NDJSON line
// or an SSE event does. Messages are passed as they are read: on a
// malformed frame the messages before the error have been passed. It does
// not allocate for frames whose strings hold no escapes.
func (d *Decoder) Frame(data []byte, fn func(*Msg)) error {
	s := scanner{data: data}
	s.ws()
	switch s.peek() {
	case '{':
		d.m = Msg{}
		if err := s.msg(&d.m, 1); err != nil {
			return err
		}
		fn(&d.m)
	case '[':
		if err := s.msgArray(1, &d.m, fn); err != nil {
			return err
		}
	default:
		return s.errf("frame is not a message object or array")
	}
	s.ws()
	if s.pos != len(s.data) {
		return s.errf("trailing data after frame")
	}
	return nil
}

// msgArray reads an array of message objects at depth.
func (s *scanner) msgArray(depth int, m *Msg, fn func(*Msg)) error {
	return s.array(depth, func(depth int) error {
		if s.peek() != '{' {
			return s.errf("array element is not a message object")
		}
		*m = Msg{}
		if err := s.msg(m, depth); err != nil {
			return err
		}
		fn(m)
		return nil
	})
}

// DecodePoll is Decoder.Poll with a fresh Decoder.
func DecodePoll(data []byte, fn func(*Msg)) (session string, err error) {
	var d Decoder
	return d.Poll(data, fn)
}

// Poll reads a long-poll reply {"session":"ID","messages":[...]} whose
// entries are messages or arrays of messages, and calls fn for each message
// as it is read. It returns the session ID.
func (d *Decoder) Poll(data []byte, fn func(*Msg)) (session string, err error) {
	s := scanner{data: data}
	s.ws()
	if s.peek() != '{' {
		return "", s.errf("poll reply is not an object")
	}
	err = s.object(1, func(key []byte, depth int) error {
		switch string(key) {
		case "session":
			v, err := s.optStr()
			session = string(v)
			return err
		case "messages":
			return s.pollMessages(depth, &d.m, fn)
		}
		return s.skip(depth)
	})
	if err != nil {
		return "", err
	}
	s.ws()
	if s.pos != len(s.data) {
		return "", s.errf("trailing data after poll reply")
	}
	return session, nil
}

func (s *scanner) pollMessages(depth int, m *Msg, fn func(*Msg)) error {
	switch s.peek() {
	case 'n':
		return s.lit("null")
	case '[':
	default:
		return s.errf("messages is not an array")
	}
	return s.array(depth, func(depth int) error {
		switch s.peek() {
		case '{':
			*m = Msg{}
			if err := s.msg(m, depth); err != nil {
				return err
			}
			fn(m)
			return nil
		case '[':
			return s.msgArray(depth, m, fn)
		}
		return s.errf("poll entry is not a message or an array")
	})
}

// EachField calls fn for each entry of a "fields" object: the field name
// and its value, unescaped for a JSON string, the literal text for a number,
// empty for null. Other value types are an error. name and value are valid
// only during the call.
func EachField(raw []byte, fn func(name, value []byte) error) error {
	s := scanner{data: raw}
	s.ws()
	if s.peek() != '{' {
		return s.errf("fields is not an object")
	}
	err := s.object(1, func(key []byte, depth int) error {
		var v []byte
		var err error
		switch c := s.peek(); {
		case c == '"':
			v, err = s.str()
		case c == '-' || (c >= '0' && c <= '9'):
			v, err = s.number()
		case c == 'n':
			err = s.lit("null")
		default:
			return s.errf("field value is not a string, number or null")
		}
		if err != nil {
			return err
		}
		return fn(key, v)
	})
	if err != nil {
		return err
	}
	s.ws()
	if s.pos != len(s.data) {
		return s.errf("trailing data after fields")
	}
	return nil
}

// scanner is a validating JSON reader over one buffer. It never allocates
// except to unescape strings that hold escapes or invalid UTF-8.
type scanner struct {
	data []byte
	pos  int
}

func (s *scanner) errf(msg string) error { return &SyntaxError{Offset: s.pos, Msg: msg} }

func (s *scanner) errAt(pos int, msg string) error { return &SyntaxError{Offset: pos, Msg: msg} }

func (s *scanner) peek() byte {
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

func (s *scanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// msg reads one message object at depth into m.
func (s *scanner) msg(m *Msg, depth int) error {
	return s.object(depth, func(key []byte, depth int) error {
		var err error
		switch string(key) {
		case "type":
			m.Type, err = s.optStr()
			m.Kind = kindOf(m.Type)
		case "symbol":
			m.Symbol, err = s.optStr()
		case "code":
			m.Code, err = s.optStr()
		case "session":
			m.Session, err = s.optStr()
		case "seq":
			m.Seq, err = s.optInt()
		case "ts":
			m.TS, err = s.optInt()
		case "id":
			m.ID, err = s.optInt()
		case "fields":
			m.Fields, err = s.optObject(depth)
		case "symbols":
			start := s.pos
			err = s.skip(depth)
			m.Symbols = s.data[start:s.pos]
			if string(m.Symbols) == "null" {
				m.Symbols = nil
			}
		default:
			err = s.skip(depth)
		}
		return err
	})
}

// object reads an object at s.pos (which holds '{'), calling fn with each
// key (unescaped) and s.pos at its value; fn must consume the value. depth
// is the object's own nesting depth; values nested in it are at depth+1.
func (s *scanner) object(depth int, fn func(key []byte, depth int) error) error {
	if depth > maxDepth {
		return s.errf("nesting too deep")
	}
	s.pos++ // '{'
	s.ws()
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	for {
		s.ws()
		if s.peek() != '"' {
			return s.errf("expected string key")
		}
		key, err := s.str()
		if err != nil {
			return err
		}
		s.ws()
		if s.peek() != ':' {
			return s.errf("expected : after key")
		}
		s.pos++
		s.ws()
		if err := fn(key, depth+1); err != nil {
			return err
		}
		s.ws()
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.errf("expected , or } in object")
		}
	}
}

// array reads an array at s.pos (which holds '['), calling fn with s.pos at
// each element; fn must consume it.
func (s *scanner) array(depth int, fn func(depth int) error) error {
	if depth > maxDepth {
		return s.errf("nesting too deep")
	}
	s.pos++ // '['
	s.ws()
	if s.peek() == ']' {
		s.pos++
		return nil
	}
	for {
		s.ws()
		if err := fn(depth + 1); err != nil {
			return err
		}
		s.ws()
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return s.errf("expected , or ] in array")
		}
	}
}

// skip reads and validates any value at depth.
func (s *scanner) skip(depth int) error {
	switch c := s.peek(); {
	case c == '{':
		return s.object(depth, func(_ []byte, depth int) error { return s.skip(depth) })
	case c == '[':
		return s.array(depth, s.skip)
	case c == '"':
		_, _, err := s.rawStr()
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		_, err := s.number()
		return err
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case s.pos >= len(s.data):
		return s.errf("unexpected end of frame")
	}
	return s.errf("invalid character")
}

func (s *scanner) lit(want string) error {
	if len(s.data)-s.pos < len(want) || string(s.data[s.pos:s.pos+len(want)]) != want {
		return s.errf("invalid literal")
	}
	s.pos += len(want)
	return nil
}

// rawStr reads a string token at s.pos and returns its content between the
// quotes, still escaped, and whether it needs unescaping (escapes or bytes
// that are not valid UTF-8).
func (s *scanner) rawStr() (raw []byte, slow bool, err error) {
	start := s.pos
	s.pos++ // '"'
	ascii := true
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		if plain[c] {
			s.pos++
			continue
		}
		switch {
		case c == '"':
			raw = s.data[start+1 : s.pos]
			s.pos++
			if !slow && !ascii && !utf8.Valid(raw) {
				slow = true
			}
			return raw, slow, nil
		case c == '\\':
			slow = true
			s.pos++
			if s.pos >= len(s.data) {
				return nil, false, s.errf("unterminated string")
			}
			switch s.data[s.pos] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos++
			case 'u':
				if len(s.data)-s.pos < 5 {
					return nil, false, s.errf("short \\u escape")
				}
				for _, h := range s.data[s.pos+1 : s.pos+5] {
					if !isHex(h) {
						return nil, false, s.errf("bad \\u escape")
					}
				}
				s.pos += 5
			default:
				return nil, false, s.errf("bad escape")
			}
		case c < 0x20:
			return nil, false, s.errf("control character in string")
		default:
			if c >= utf8.RuneSelf {
				ascii = false
			}
			s.pos++
		}
	}
	return nil, false, s.errf("unterminated string")
}

// plain marks the bytes a string holds as they are: printable ASCII other
// than the quote and the backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// str reads a string token and returns its unescaped content, with invalid
// UTF-8 replaced as encoding/json does.
func (s *scanner) str() ([]byte, error) {
	start := s.pos
	raw, slow, err := s.rawStr()
	if err != nil || !slow {
		return raw, err
	}
	var v string
	if err := json.Unmarshal(s.data[start:s.pos], &v); err != nil {
		return nil, s.errAt(start, "bad string")
	}
	return []byte(v), nil
}

// optStr reads a string or null (nil).
func (s *scanner) optStr() ([]byte, error) {
	if s.peek() == 'n' {
		return nil, s.lit("null")
	}
	if s.peek() != '"' {
		return nil, s.errf("expected a string")
	}
	return s.str()
}

// number reads a JSON number token and returns its text.
func (s *scanner) number() ([]byte, error) {
	start := s.pos
	d := s.data
	if s.peek() == '-' {
		s.pos++
	}
	switch {
	case s.pos < len(d) && d[s.pos] == '0':
		s.pos++
	case s.pos < len(d) && d[s.pos] >= '1' && d[s.pos] <= '9':
		for s.pos < len(d) && d[s.pos] >= '0' && d[s.pos] <= '9' {
			s.pos++
		}
	default:
		return nil, s.errf("bad number")
	}
	if s.pos < len(d) && d[s.pos] == '.' {
		s.pos++
		n := s.pos
		for s.pos < len(d) && d[s.pos] >= '0' && d[s.pos] <= '9' {
			s.pos++
		}
		if s.pos == n {
			return nil, s.errf("bad number fraction")
		}
	}
	if s.pos < len(d) && (d[s.pos] == 'e' || d[s.pos] == 'E') {
		s.pos++
		if s.pos < len(d) && (d[s.pos] == '+' || d[s.pos] == '-') {
			s.pos++
		}
		n := s.pos
		for s.pos < len(d) && d[s.pos] >= '0' && d[s.pos] <= '9' {
			s.pos++
		}
		if s.pos == n {
			return nil, s.errf("bad number exponent")
		}
	}
	return d[start:s.pos], nil
}

// optInt reads an integer that fits int64, or null (0).
func (s *scanner) optInt() (int64, error) {
	c := s.peek()
	if c == 'n' {
		return 0, s.lit("null")
	}
	if c != '-' && (c < '0' || c > '9') {
		return 0, s.errf("expected an integer")
	}
	start := s.pos
	text, err := s.number()
	if err != nil {
		return 0, err
	}
	if n, ok := parseInt(text); ok {
		return n, nil
	}
	return 0, s.errAt(start, "not an int64 integer")
}

// parseInt parses a JSON number that must be an int64 integer, without
// allocating on the common path.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	d := b
	if neg {
		d = b[1:]
	}
	if len(d) == 0 || len(d) > 18 {
		n, err := strconv.ParseInt(string(b), 10, 64)
		return n, err == nil
	}
	var n int64
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// optObject reads an object (returning its raw text) or null (nil).
func (s *scanner) optObject(depth int) ([]byte, error) {
	switch s.peek() {
	case 'n':
		return nil, s.lit("null")
	case '{':
		start := s.pos
		err := s.skip(depth)
		return s.data[start:s.pos], err
	}
	return nil, s.errf("expected an object")
}
