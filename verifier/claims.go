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
	all                         map[string]any // the kept claims (claimFilter)
	// From introspection answers: RFC 7662 "active" and "token_type", and
	// "token_use" (Amazon Cognito's name for it). nil/"" when absent.
	active              *bool
	tokenType, tokenUse string
}

// maxNumericDate is 9999-12-31T23:59:59Z.
const maxNumericDate = 253402300799

// registeredNames are the claims read here, numbered by the claim*
// constants; each may appear once. The last three only mean something in
// an introspection answer.
var registeredNames = [...]string{
	"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "azp", "cid", "appid", "scope", "scp",
	"active", "token_type", "token_use",
}

const (
	claimIss = iota
	claimSub
	claimAud
	claimExp
	claimNbf
	claimIat
	claimJti
	claimClientID
	claimAzp
	claimCid
	claimAppid
	claimScope
	claimScp
	claimActive
	claimTokenType
	claimTokenUse
)

// claimValues are the raw JSON values of the registered claims, by number
// (nil when absent).
type claimValues [len(registeredNames)][]byte

// parseClaims decodes a claim set strictly: names match exactly (RFC 7519
// §4: "EXP" is not "exp"), a registered claim given twice is refused, a
// time must be a JSON number, the text must be UTF-8. The claims routes
// and headers read (claims.all) are picked by the verifier's claimFilter.
func parseClaims(payload []byte) (*claims, error) {
	if !utf8.Valid(payload) {
		// JSON text is UTF-8 (RFC 8259 §8.1). Go's decoder would turn other
		// bytes into U+FFFD in the claim map while the raw claim strings kept
		// them: two spellings of one subject.
		return nil, errors.New("claims: not UTF-8")
	}
	c := &claims{}
	var raw claimValues
	var seen uint32
	err := members(payload, func(name, value []byte) error {
		i := slices.Index(registeredNames[:], string(name))
		if i < 0 {
			return nil
		}
		if seen&(1<<i) != 0 {
			return fmt.Errorf("claim %q appears more than once", name)
		}
		seen |= 1 << i
		raw[i] = value
		return c.readAtOnce(i, value)
	})
	if err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	if err := c.readRest(&raw); err != nil {
		return nil, err
	}
	return c, nil
}

// readAtOnce reads, as the scan meets them, the claims that hold one
// string or boolean: iss, sub, active, token_type and token_use.
func (c *claims) readAtOnce(i int, raw []byte) (err error) {
	switch i {
	case claimIss:
		c.issuer, err = claimString("iss", raw)
	case claimSub:
		c.subject, err = claimString("sub", raw)
	case claimActive:
		if string(raw) != "true" && string(raw) != "false" {
			return errors.New(`"active" is not a boolean`)
		}
		active := string(raw) == "true"
		c.active = &active
	case claimTokenType:
		c.tokenType, err = claimString("token_type", raw)
	case claimTokenUse:
		c.tokenUse, err = claimString("token_use", raw)
	}
	return err
}

// readRest reads, once the scan is over, the claims that depend on one
// another or need more than a string: the client ("client_id", else
// "azp", else "cid", else "appid": Microsoft Entra ID v1), "aud", the times and the scopes ("scope", else
// "scp").
func (c *claims) readRest(raw *claimValues) error {
	var err error
	for _, r := range []([]byte){raw[claimClientID], raw[claimAzp], raw[claimCid], raw[claimAppid]} {
		if c.clientID == "" && !isNull(r) {
			if c.clientID, err = claimString("client_id", r); err != nil {
				return err
			}
		}
	}
	if c.audience, err = stringOrList("aud", raw[claimAud]); err != nil {
		return err
	}
	for _, t := range []struct {
		i   int
		dst *time.Time
	}{{claimExp, &c.expiry}, {claimNbf, &c.notBefore}, {claimIat, &c.issuedAt}} {
		if *t.dst, err = numericDate(registeredNames[t.i], raw[t.i]); err != nil {
			return err
		}
	}
	i := claimScope
	if isNull(raw[i]) {
		i = claimScp
	}
	if r := raw[i]; !isNull(r) && r[0] == '"' {
		s, err := claimString(registeredNames[i], r)
		if err != nil {
			return err
		}
		c.scopes = strings.Fields(s)
	} else if c.scopes, err = stringOrList(registeredNames[i], r); err != nil {
		return err
	}
	return nil
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

// stringOrList reads a claim that is a string or a list of strings (a
// null in the list reads as "", as encoding/json decodes it). raw is valid
// JSON (members checked the whole document), so the list is split by
// valueEnd, without encoding/json's decoder state per claim.
func stringOrList(name string, raw []byte) ([]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	switch raw[0] {
	case '"':
		s, err := claimString(name, raw)
		if err != nil {
			return nil, fmt.Errorf("claim %q: %w", name, err)
		}
		return []string{s}, nil
	case '[':
		l := []string{}
		i := skipSpace(raw, 1)
		for i < len(raw) && raw[i] != ']' {
			end := valueEnd(raw, i)
			v := raw[i:end]
			if string(v) != "null" && v[0] != '"' {
				return nil, fmt.Errorf("claim %q holds a non-string", name)
			}
			s, err := claimString(name, v)
			if err != nil {
				return nil, fmt.Errorf("claim %q: %w", name, err)
			}
			l = append(l, s)
			i = skipSpace(raw, end)
			if i < len(raw) && raw[i] == ',' {
				i = skipSpace(raw, i+1)
			}
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
