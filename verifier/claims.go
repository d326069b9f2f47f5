package verifier

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
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
// claim policies and claim headers) is decoded as well only when all is
// true: the typed decode alone is much cheaper.
func parseClaims(payload []byte, all bool) (*claims, error) {
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
	if c.audience, err = stringOrList("aud", r.Aud); err != nil {
		return nil, err
	}
	for _, t := range []struct {
		name string
		raw  json.RawMessage
		dst  *time.Time
	}{{"exp", r.Exp, &c.expiry}, {"nbf", r.Nbf, &c.notBefore}, {"iat", r.Iat, &c.issuedAt}} {
		if *t.dst, err = numericDate(t.name, t.raw); err != nil {
			return nil, err
		}
	}
	// "scope" (space-separated string, or a list), else "scp".
	raw, name := r.Scope, "scope"
	if isNull(raw) {
		raw, name = r.Scp, "scp"
	}
	if !isNull(raw) && raw[0] == '"' {
		var s string
		_ = json.Unmarshal(raw, &s) // valid: the struct decode accepted it
		c.scopes = strings.Fields(s)
	} else if c.scopes, err = stringOrList(name, raw); err != nil {
		return nil, err
	}
	if all {
		dec := json.NewDecoder(bytes.NewReader(payload))
		dec.UseNumber()
		if err := dec.Decode(&c.all); err != nil {
			return nil, fmt.Errorf("claims: %w", err)
		}
	}
	return c, nil
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

// stringOrList reads a claim that is a string or a list of strings.
func stringOrList(name string, raw json.RawMessage) ([]string, error) {
	if isNull(raw) {
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

// numericDate reads an RFC 7519 NumericDate: a JSON number of seconds,
// possibly fractional. A string is refused.
func numericDate(name string, raw json.RawMessage) (time.Time, error) {
	if isNull(raw) {
		return time.Time{}, nil
	}
	// raw is valid JSON (the struct decode accepted it): only a number
	// parses; a quoted "123" does not.
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f < 0 || f > maxNumericDate {
		return time.Time{}, fmt.Errorf("claim %q is not a number in range", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}
