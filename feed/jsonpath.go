package feed

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Paths into JSON messages, as mappings name them: keys joined by dots and
// array indexes in brackets, "data.b", "data[0].c", "[2].s"; the empty path
// is the whole value. A key holds any characters but '.', '[' and ']'.
//
// A mapping's paths are compiled into a trie, and a message is walked once,
// along the trie only: values off the paths are skipped without being
// decoded. The walk assumes valid JSON (json.Valid first).

// maxPathLen bounds a path's text, and maxPathIndex an array index in it.
const (
	maxPathLen   = 256
	maxPathIndex = 1 << 20
)

// pathStep is one key or array index of a path.
type pathStep struct {
	key   string
	index int // when key is ""
}

// parsePath parses the text of a path.
func parsePath(s string) ([]pathStep, error) {
	if len(s) > maxPathLen {
		return nil, fmt.Errorf("path %s longer than %d bytes", quoteShort(s), maxPathLen)
	}
	var steps []pathStep
	for i := 0; i < len(s); {
		switch {
		case s[i] == '[':
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				return nil, fmt.Errorf("path %q: no ] after [ at byte %d", s, i)
			}
			digits := s[i+1 : i+j]
			n, err := strconv.Atoi(digits)
			if err != nil || n < 0 || n >= maxPathIndex || strings.Trim(digits, "0123456789") != "" {
				return nil, fmt.Errorf("path %q: want an array index below %d in [] at byte %d", s, maxPathIndex, i)
			}
			steps = append(steps, pathStep{index: n})
			if i += j + 1; i < len(s) && s[i] != '.' && s[i] != '[' {
				return nil, fmt.Errorf("path %q: want . or [ after ] at byte %d", s, i)
			}
		case s[i] == '.' && i > 0:
			i++
			fallthrough
		default:
			j := i
			for j < len(s) && s[j] != '.' && s[j] != '[' && s[j] != ']' {
				j++
			}
			if j == i {
				return nil, fmt.Errorf("path %q: empty key at byte %d", s, i)
			}
			steps = append(steps, pathStep{key: s[i:j]})
			i = j
		}
	}
	return steps, nil
}

// pathNode is a node of a trie of paths. A slot is an index into the spans
// a walk fills: the slots of a node receive the value found there.
type pathNode struct {
	keys    map[string]*pathNode
	indexes map[int]*pathNode
	slots   []int // paths ending here
	sub     []int // slots at or under this node
}

// add inserts a path ending in slot.
func (n *pathNode) add(steps []pathStep, slot int) {
	n.sub = append(n.sub, slot)
	for _, st := range steps {
		var next *pathNode
		if st.key != "" {
			if n.keys == nil {
				n.keys = map[string]*pathNode{}
			}
			if next = n.keys[st.key]; next == nil {
				next = &pathNode{}
				n.keys[st.key] = next
			}
		} else {
			if n.indexes == nil {
				n.indexes = map[int]*pathNode{}
			}
			if next = n.indexes[st.index]; next == nil {
				next = &pathNode{}
				n.indexes[st.index] = next
			}
		}
		n = next
		n.sub = append(n.sub, slot)
	}
	n.slots = append(n.slots, slot)
}

// walk visits the value at data[i:] (after optional white space) and
// stores in spans[s] the text of the value found at each slot s reached.
// It returns the offset just after the value. A key given twice counts
// once, as its last occurrence (as encoding/json decodes into a map). data
// must be valid JSON.
func (n *pathNode) walk(data []byte, i int, spans [][]byte) int {
	i = skipSpace(data, i)
	start, end := i, 0
	switch {
	case data[i] == '{' && n.keys != nil:
		i = skipSpace(data, i+1)
		for data[i] != '}' {
			k := i
			i = skipString(data, i)
			child := n.child(data[k:i])
			i = skipSpace(data, i) + 1 // the colon
			if child != nil {
				for _, s := range child.sub {
					spans[s] = nil
				}
				i = child.walk(data, i, spans)
			} else {
				i = skipValue(data, skipSpace(data, i))
			}
			if i = skipSpace(data, i); data[i] == ',' {
				i = skipSpace(data, i+1)
			}
		}
		end = i + 1
	case data[i] == '[' && n.indexes != nil:
		i = skipSpace(data, i+1)
		for idx := 0; data[i] != ']'; idx++ {
			if child := n.indexes[idx]; child != nil {
				i = child.walk(data, i, spans)
			} else {
				i = skipValue(data, i)
			}
			if i = skipSpace(data, i); data[i] == ',' {
				i = skipSpace(data, i+1)
			}
		}
		end = i + 1
	default:
		end = skipValue(data, i)
	}
	for _, s := range n.slots {
		spans[s] = data[start:end]
	}
	return end
}

// child returns the node under the key whose JSON string token is tok.
func (n *pathNode) child(tok []byte) *pathNode {
	key := tok[1 : len(tok)-1]
	if bytes.IndexByte(key, '\\') < 0 {
		return n.keys[string(key)]
	}
	s, ok := jsonString(tok)
	if !ok {
		return nil
	}
	return n.keys[s]
}

// elements calls fn with the offset of each element of the array at
// data[i] (valid JSON, white space skipped).
func elements(data []byte, i int, fn func(at int)) {
	i = skipSpace(data, i+1)
	for data[i] != ']' {
		fn(i)
		if i = skipSpace(data, skipValue(data, i)); data[i] == ',' {
			i = skipSpace(data, i+1)
		}
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the offset after the string token at data[i].
func skipString(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// skipValue returns the offset after the value at data[i].
func skipValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for i < len(data) {
			switch data[i] {
			case '"':
				i = skipString(data, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default: // number, true, false, null
		for i < len(data) {
			switch data[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}
