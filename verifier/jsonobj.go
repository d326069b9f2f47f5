package verifier

import (
	"encoding/json"
	"errors"
)

// errNotObject: the document is not one valid JSON object.
var errNotObject = errors.New("not a JSON object")

// members calls fn with the name and raw value of every member of the JSON
// object doc, in document order, duplicates included. Names are compared by
// fn exactly as written (after JSON unescaping): unlike encoding/json, "EXP"
// is not "exp" (RFC 7519 §4), and a repeated name is seen twice instead of
// the last one silently winning.
//
// doc is checked with json.Valid first, so the scan itself only has to find
// where each value ends.
func members(doc []byte, fn func(name, raw []byte) error) error {
	if !json.Valid(doc) {
		return errNotObject
	}
	i := skipSpace(doc, 0)
	if i >= len(doc) || doc[i] != '{' {
		return errNotObject
	}
	i++
	for {
		i = skipSpace(doc, i)
		if doc[i] == '}' {
			return nil
		}
		if doc[i] == ',' {
			i = skipSpace(doc, i+1)
		}
		end := stringEnd(doc, i)
		name := doc[i+1 : end-1]
		if hasEscape(name) {
			var s string
			if err := json.Unmarshal(doc[i:end], &s); err != nil {
				return err
			}
			name = []byte(s)
		}
		i = skipSpace(doc, end)
		i = skipSpace(doc, i+1) // the ':'
		vend := valueEnd(doc, i)
		if err := fn(name, doc[i:vend]); err != nil {
			return err
		}
		i = vend
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string starting at b[i] == '"'.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// valueEnd returns the index just past the value starting at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = stringEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	default: // number, true, false, null
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
			j++
		}
		return j
	}
}

func hasEscape(b []byte) bool {
	for _, c := range b {
		if c == '\\' {
			return true
		}
	}
	return false
}
