package verifier

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// claims are the registered and scope claims of a token, decoded strictly:
// names match exactly, registered names appear once, a time that is not a
// JSON number or an "aud" that is neither a string nor a list of strings
// is an error.
type claims struct {
	issuer, subject, clientID   string
	audience, scopes            []string
	expiry, notBefore, issuedAt time.Time
	all                         map[string]any
	// From introspection answers: RFC 7662 "active" and "token_type", and
	// "token_use" (Amazon Cognito's name for it). nil/"" when absent.
	active              *bool
	tokenType, tokenUse string
}

// maxNumericDate is 9999-12-31T23:59:59Z.
const maxNumericDate = 253402300799

// registeredNames are the claims read here; each may appear once. The
// last three only mean something in an introspection answer.
var registeredNames = []string{
	"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "azp", "cid", "scope", "scp",
	"active", "token_type", "token_use",
}

// parseClaims decodes a claim set strictly: names match exactly (RFC 7519
// §4: "EXP" is not "exp"), a registered claim given twice is refused, a
// time must be a JSON number, the text must be UTF-8. The full map of
// claims (for claim policies and claim headers) is decoded as well only
// when all is true.
func parseClaims(payload []byte, all bool) (*claims, error) {
	if !utf8.Valid(payload) {
		// JSON text is UTF-8 (RFC 8259 §8.1). Go's decoder would turn other
		// bytes into U+FFFD in the claim map while the raw claim strings kept
		// them: two spellings of one subject.
		return nil, errors.New("claims: not UTF-8")
	}
	c := &claims{}
	var seen uint32
	var clientID, azp, cid, scope, scp, aud, exp, nbf, iat []byte
	err := members(payload, func(name, raw []byte) error {
		i := slices.Index(registeredNames, string(name))
		if i < 0 {
			return nil
		}
		if seen&(1<<i) != 0 {
			return fmt.Errorf("claim %q appears more than once", name)
		}
		seen |= 1 << i
		var err error
		switch string(name) {
		case "iss":
			c.issuer, err = claimString("iss", raw)
		case "sub":
			c.subject, err = claimString("sub", raw)
		case "client_id":
			clientID = raw
		case "azp":
			azp = raw
		case "cid":
			cid = raw
		case "aud":
			aud = raw
		case "scope":
			scope = raw
		case "scp":
			scp = raw
		case "exp":
			exp = raw
		case "nbf":
			nbf = raw
		case "iat":
			iat = raw
		case "active":
			if string(raw) != "true" && string(raw) != "false" {
				return errors.New(`"active" is not a boolean`)
			}
			active := string(raw) == "true"
			c.active = &active
		case "token_type":
			c.tokenType, err = claimString("token_type", raw)
		case "token_use":
			c.tokenUse, err = claimString("token_use", raw)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	for _, raw := range [][]byte{clientID, azp, cid} {
		if c.clientID == "" && !isNull(raw) {
			if c.clientID, err = claimString("client_id", raw); err != nil {
				return nil, err
			}
		}
	}
	if c.audience, err = stringOrList("aud", aud); err != nil {
		return nil, err
	}
	for _, t := range []struct {
		name string
		raw  []byte
		dst  *time.Time
	}{{"exp", exp, &c.expiry}, {"nbf", nbf, &c.notBefore}, {"iat", iat, &c.issuedAt}} {
		if *t.dst, err = numericDate(t.name, t.raw); err != nil {
			return nil, err
		}
	}
	// "scope" (space-separated string, or a list), else "scp".
	raw, name := scope, "scope"
	if isNull(raw) {
		raw, name = scp, "scp"
	}
	if !isNull(raw) && raw[0] == '"' {
		s, err := claimString(name, raw)
		if err != nil {
			return nil, err
		}
		c.scopes = strings.Fields(s)
	} else if c.scopes, err = stringOrList(name, raw); err != nil {
		return nil, err
	}
	if all {
		if c.all, err = claimMap(payload); err != nil {
			return nil, fmt.Errorf("claims: %w", err)
		}
	}
	return c, nil
}

// claimString reads a claim that must be a string (or null).
func claimString(name string, raw []byte) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	if raw[0] != '"' {
		return "", fmt.Errorf("claim %q is not a string", name)
	}
	if !hasEscape(raw) {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

func isNull(raw []byte) bool { return len(raw) == 0 || string(raw) == "null" }

// stringOrList reads a claim that is a string or a list of strings.
func stringOrList(name string, raw []byte) ([]string, error) {
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
func numericDate(name string, raw []byte) (time.Time, error) {
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
