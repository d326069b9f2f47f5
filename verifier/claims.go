package verifier

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// claims are the registered and scope claims of a token, decoded strictly:
// a time that is not a JSON number, or an "aud" that is neither a string
// nor a list of strings, is an error.
type claims struct {
	issuer, subject, clientID   string
	audience, scopes            []string
	expiry, notBefore, issuedAt time.Time
	all                         map[string]any
}

// maxNumericDate is 9999-12-31T23:59:59Z.
const maxNumericDate = 253402300799

// registered is the fixed part of a claim set, decoded into a struct (much
// cheaper than a map). Polymorphic claims stay raw and are checked by hand.
type registered struct {
	Iss      string          `json:"iss"`
	Sub      string          `json:"sub"`
	ClientID string          `json:"client_id"`
	Azp      string          `json:"azp"`
	Cid      string          `json:"cid"`
	Aud      json.RawMessage `json:"aud"`
	Scope    json.RawMessage `json:"scope"`
	Scp      json.RawMessage `json:"scp"`
	Exp      json.RawMessage `json:"exp"`
	Nbf      json.RawMessage `json:"nbf"`
	Iat      json.RawMessage `json:"iat"`
}

// parseClaims decodes a claim set strictly. The full map of claims (for
// claim policies and claim headers) is decoded only when all is true.
func parseClaims(payload []byte, all bool) (*claims, error) {
	if !all {
		return parseRegistered(payload)
	}
	return parseAll(payload)
}

func parseRegistered(payload []byte) (*claims, error) {
	var r registered
	if err := json.Unmarshal(payload, &r); err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	c := &claims{issuer: r.Iss, subject: r.Sub, clientID: r.ClientID}
	if c.clientID == "" {
		c.clientID = r.Azp
	}
	if c.clientID == "" {
		c.clientID = r.Cid
	}
	var err error
	if c.audience, err = rawStringOrList("aud", r.Aud); err != nil {
		return nil, err
	}
	for _, t := range []struct {
		name string
		raw  json.RawMessage
		dst  *time.Time
	}{{"exp", r.Exp, &c.expiry}, {"nbf", r.Nbf, &c.notBefore}, {"iat", r.Iat, &c.issuedAt}} {
		if *t.dst, err = rawNumericDate(t.name, t.raw); err != nil {
			return nil, err
		}
	}
	raw, name := r.Scope, "scope"
	if isNullRaw(raw) {
		raw, name = r.Scp, "scp"
	}
	if !isNullRaw(raw) && raw[0] == '"' {
		var s string
		_ = json.Unmarshal(raw, &s)
		c.scopes = strings.Fields(s)
	} else if c.scopes, err = rawStringOrList(name, raw); err != nil {
		return nil, err
	}
	return c, nil
}

func isNullRaw(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

func rawStringOrList(name string, raw json.RawMessage) ([]string, error) {
	if isNullRaw(raw) {
		return nil, nil
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("claim %q: %w", name, err)
		}
		return []string{s}, nil
	case '[':
		var l []string
		if err := json.Unmarshal(raw, &l); err != nil {
			return nil, fmt.Errorf("claim %q holds a non-string", name)
		}
		return l, nil
	}
	return nil, fmt.Errorf("claim %q is neither a string nor a list", name)
}

func rawNumericDate(name string, raw json.RawMessage) (time.Time, error) {
	if isNullRaw(raw) {
		return time.Time{}, nil
	}
	if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return time.Time{}, fmt.Errorf("claim %q is not a number", name)
	}
	return numericDate(map[string]any{name: json.Number(raw)}, name)
}

func parseAll(payload []byte) (*claims, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("claims are not a JSON object: %w", err)
	}
	if dec.More() {
		return nil, errors.New("trailing data after claims")
	}
	return claimsFromMap(m)
}

func claimsFromMap(m map[string]any) (*claims, error) {
	c := &claims{all: m}
	var err error
	if c.issuer, err = optString(m, "iss"); err != nil {
		return nil, err
	}
	if c.subject, err = optString(m, "sub"); err != nil {
		return nil, err
	}
	for _, k := range []string{"client_id", "azp", "cid"} {
		if c.clientID != "" {
			break
		}
		if c.clientID, err = optString(m, k); err != nil {
			return nil, err
		}
	}
	if c.audience, err = stringOrList(m, "aud"); err != nil {
		return nil, err
	}
	if c.expiry, err = numericDate(m, "exp"); err != nil {
		return nil, err
	}
	if c.notBefore, err = numericDate(m, "nbf"); err != nil {
		return nil, err
	}
	if c.issuedAt, err = numericDate(m, "iat"); err != nil {
		return nil, err
	}
	if c.scopes, err = scopes(m); err != nil {
		return nil, err
	}
	return c, nil
}

func optString(m map[string]any, k string) (string, error) {
	v, ok := m[k]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("claim %q is not a string", k)
	}
	return s, nil
}

func stringOrList(m map[string]any, k string) ([]string, error) {
	switch v := m[k].(type) {
	case nil:
		return nil, nil
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("claim %q holds a non-string", k)
			}
			out = append(out, s)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("claim %q is neither a string nor a list", k)
	}
}

// scopes reads "scope" (space-separated string, or a list) or else "scp"
// (list, or space-separated string).
func scopes(m map[string]any) ([]string, error) {
	for _, k := range []string{"scope", "scp"} {
		switch v := m[k].(type) {
		case nil:
			continue
		case string:
			return strings.Fields(v), nil
		default:
			return stringOrList(m, k)
		}
	}
	return nil, nil
}

// numericDate reads an RFC 7519 NumericDate: a JSON number of seconds,
// possibly fractional. A string is refused.
func numericDate(m map[string]any, k string) (time.Time, error) {
	v, ok := m[k]
	if !ok || v == nil {
		return time.Time{}, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, fmt.Errorf("claim %q is not a number", k)
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, fmt.Errorf("claim %q is out of range", k)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}
