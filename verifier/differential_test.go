package verifier

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	gjwt "github.com/golang-jwt/jwt/v5"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// The differential test checks the verifier against two independent JWT
// libraries, go-jose (v4, its jwt package) and golang-jwt (v5), on
// generated tokens and deterministic mutations of them: bit flips, segment
// re-encodings (padding, standard alphabet, spare bits, line breaks),
// header and claim edits (re-signed, so the signature is genuine), alg
// swaps, duplicate members, whitespace. Whatever either library refuses
// for a reason the RFCs share (bad signature, malformed token, bad base64,
// disallowed alg, expired, wrong iss or aud…) tokengate must refuse too;
// a token tokengate accepts and a library refuses for any other reason is
// reported. tokengate refusing what the libraries accept is expected (it
// is stricter: canonical base64, duplicate members, crit, UTF-8, key alg)
// and only counted. (Among what they accept: go-jose verifies a header or
// payload re-spelled with spare bits or a line break, as it checks the
// signature over its own re-encoding; golang-jwt takes the last of
// duplicate "alg" or "aud" members.)

const (
	diffIss  = "https://idp.example"
	diffAud  = "https://hooks.example.com"
	diffSkew = 30 * time.Second
)

var diffNow = time.Unix(1_800_000_000, 0)

// diffKey is one signing key of the test issuer.
type diffKey struct {
	*verifiertest.Key
	pub crypto.PublicKey
}

func diffKeys(t *testing.T) []diffKey {
	t.Helper()
	rs, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ec256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	var out []diffKey
	for _, k := range []struct {
		alg  jose.SignatureAlgorithm
		priv crypto.Signer
	}{{jose.RS256, rs}, {jose.PS256, ps}, {jose.ES256, ec256}, {jose.ES384, ec384}, {jose.EdDSA, ed}} {
		out = append(out, diffKey{&verifiertest.Key{ID: "k-" + string(k.alg), Alg: k.alg, Private: k.priv}, k.priv.Public()})
	}
	return out
}

// diffVerifiers are tokengate's verifier and the two libraries, set up
// alike: the same keys (by kid, or by alg for a token without kid), the
// same algorithms, issuer, audience, clock and leeway, exp required.
type diffVerifiers struct {
	ours  *JWT
	keys  []diffKey
	algs  []jose.SignatureAlgorithm
	gjwt  *gjwt.Parser
	names []string
}

func newDiffVerifiers(t *testing.T, keys []diffKey) *diffVerifiers {
	t.Helper()
	d := &diffVerifiers{keys: keys}
	var jwks []jose.JSONWebKey
	for _, k := range keys {
		jwks = append(jwks, k.Public())
		d.algs = append(d.algs, k.Alg)
		d.names = append(d.names, string(k.Alg))
	}
	var err error
	d.ours, err = NewJWT(JWTOptions{
		Name: "idp", Issuer: diffIss, KeySet: mustStatic(t, jwks...), Audiences: []string{diffAud},
		Algorithms: d.names, ClockSkew: diffSkew, KeepClaims: true, Now: func() time.Time { return diffNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	d.gjwt = gjwt.NewParser(gjwt.WithValidMethods(d.names), gjwt.WithIssuer(diffIss), gjwt.WithAudience(diffAud),
		gjwt.WithExpirationRequired(), gjwt.WithIssuedAt(), gjwt.WithLeeway(diffSkew),
		gjwt.WithTimeFunc(func() time.Time { return diffNow }))
	return d
}

// key finds the verification key as tokengate does: by kid, or by alg.
func (d *diffVerifiers) key(kid, alg string) (crypto.PublicKey, error) {
	for _, k := range d.keys {
		if kid == k.ID || kid == "" && alg == string(k.Alg) {
			return k.pub, nil
		}
	}
	return nil, errors.New("no such key")
}

func (d *diffVerifiers) golangJWT(tok string) error {
	_, err := d.gjwt.Parse(tok, func(t *gjwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return d.key(kid, t.Method.Alg())
	})
	return err
}

func (d *diffVerifiers) goJose(tok string) error {
	p, err := josejwt.ParseSigned(tok, d.algs)
	if err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	if len(p.Headers) != 1 {
		return errors.New("not one signature")
	}
	key, err := d.key(p.Headers[0].KeyID, p.Headers[0].Algorithm)
	if err != nil {
		return err
	}
	var c josejwt.Claims
	if err := p.Claims(key, &c); err != nil {
		return fmt.Errorf("claims: %w", err)
	}
	if c.Expiry == nil {
		return errors.New("no exp") // as golang-jwt's WithExpirationRequired and tokengate
	}
	return c.ValidateWithLeeway(josejwt.Expected{Issuer: diffIss, AnyAudience: []string{diffAud}, Time: diffNow}, diffSkew)
}

// ownReasons are refusals that are one library's rule, not one the JOSE
// RFCs make every verifier share. Tokens accepted by tokengate and refused
// for these are reported, not failed.
var ownReasons = []string{
	// go-jose decodes an embedded "jwk" header and refuses one holding
	// private or symmetric key material. tokengate never takes a key from
	// the token (the jwk, jku, x5u and x5c members are ignored; the key
	// comes from the issuer's JWKS by kid), so the member is inert.
	"failed to unmarshal JWK",
}

// sharedReason reports whether a library's refusal is one every JWT
// implementation must make (RFC 7515, 7518, 7519): a bad or unverifiable
// signature, a malformed token, an algorithm not allowed, a failed
// registered-claim check. Anything else is reported, not failed.
func sharedReason(err error) bool {
	for _, own := range ownReasons {
		if strings.Contains(err.Error(), own) {
			return false
		}
	}
	for _, e := range []error{
		gjwt.ErrTokenMalformed, gjwt.ErrTokenUnverifiable, gjwt.ErrTokenSignatureInvalid,
		gjwt.ErrTokenRequiredClaimMissing, gjwt.ErrTokenInvalidAudience, gjwt.ErrTokenExpired,
		gjwt.ErrTokenUsedBeforeIssued, gjwt.ErrTokenInvalidIssuer, gjwt.ErrTokenNotValidYet,
		gjwt.ErrTokenInvalidClaims,
		jose.ErrCryptoFailure, jose.ErrUnsupportedAlgorithm,
		josejwt.ErrExpired, josejwt.ErrNotValidYet, josejwt.ErrIssuedInTheFuture,
		josejwt.ErrInvalidIssuer, josejwt.ErrInvalidAudience,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	// go-jose's parse and claim-decoding errors are malformed tokens.
	s := err.Error()
	return strings.HasPrefix(s, "parse: ") || strings.HasPrefix(s, "claims: ") || s == "no exp" || s == "no such key"
}

// mutator derives tokens from a genuine one, deterministically.
type mutator struct{ rng *mrand.Rand }

var (
	b64e = base64.RawURLEncoding.EncodeToString
	b64d = func(s string) []byte { b, _ := base64.RawURLEncoding.DecodeString(s); return b }
)

// resign signs header and payload (given byte for byte) with k.
func resign(k diffKey, header, payload string) string {
	return verifiertest.SignRawHeader(k.Key, []byte(header), []byte(payload))
}

// mutations returns named variants of tok (signed by k with payload).
func (m *mutator) mutations(k diffKey, tok, payload string) map[string]string {
	out := map[string]string{"genuine": tok}
	parts := strings.Split(tok, ".")
	header := string(b64d(parts[0]))
	join := func(i int, seg string) string {
		p := append([]string(nil), parts...)
		p[i] = seg
		return strings.Join(p, ".")
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	// Bit flips and character swaps anywhere in the token.
	for n := range 24 {
		b := []byte(tok)
		i := m.rng.IntN(len(b))
		if n%2 == 0 {
			b[i] ^= 1 << m.rng.IntN(8)
		} else {
			b[i] = alphabet[m.rng.IntN(len(alphabet))]
		}
		out[fmt.Sprintf("flip %d@%d", n, i)] = string(b)
	}
	// Segment re-encodings.
	for i, seg := range parts {
		raw := b64d(seg)
		out[fmt.Sprintf("seg%d padded", i)] = join(i, base64.URLEncoding.EncodeToString(raw))
		out[fmt.Sprintf("seg%d std alphabet", i)] = join(i, base64.RawStdEncoding.EncodeToString(raw))
		out[fmt.Sprintf("seg%d std padded", i)] = join(i, base64.StdEncoding.EncodeToString(raw))
		out[fmt.Sprintf("seg%d line break", i)] = join(i, seg[:len(seg)/2]+"\n"+seg[len(seg)/2:])
		out[fmt.Sprintf("seg%d space", i)] = join(i, seg[:len(seg)/2]+" "+seg[len(seg)/2:])
		out[fmt.Sprintf("seg%d trailing =", i)] = join(i, seg+"=")
		for j, r := range respellings(seg) {
			out[fmt.Sprintf("seg%d spare bits %d", i, j)] = join(i, r)
		}
	}
	// Shape.
	out["leading space"] = " " + tok
	out["trailing space"] = tok + " "
	out["trailing dot"] = tok + "."
	out["no signature"] = parts[0] + "." + parts[1] + "."
	out["two segments"] = parts[0] + "." + parts[1]
	out["four segments"] = tok + "." + parts[2]
	out["JSON serialization"] = fmt.Sprintf(`{"protected":%q,"payload":%q,"signature":%q}`, parts[0], parts[1], parts[2])
	// Header edits, signature kept: the signing input changes, so every
	// verifier must refuse.
	for _, alg := range []string{"none", "NONE", "nOnE", "", "HS256", "HS512", "RS256", "RS384", "PS256", "ES256", "ES384", "ES512", "EdDSA", "ES256K"} {
		h := strings.Replace(header, `"alg":"`+string(k.Alg)+`"`, `"alg":"`+alg+`"`, 1)
		out["alg swap "+alg] = b64e([]byte(h)) + "." + parts[1] + "." + parts[2]
		out["alg swap, no sig "+alg] = b64e([]byte(h)) + "." + parts[1] + "."
	}
	// Header edits, re-signed with the genuine key.
	alg := `"alg":"` + string(k.Alg) + `"`
	kid := `"kid":"` + k.ID + `"`
	for name, h := range map[string]string{
		"hdr exact":              `{` + alg + `,` + kid + `}`,
		"hdr whitespace":         "{ \n\t" + alg + " , " + kid + " }",
		"hdr no kid":             `{` + alg + `}`,
		"hdr unknown kid":        `{` + alg + `,"kid":"nope"}`,
		"hdr alg twice, none":    `{` + alg + `,"alg":"none",` + kid + `}`,
		"hdr none then alg":      `{"alg":"none",` + alg + `,` + kid + `}`,
		"hdr kid twice":          `{` + alg + `,"kid":"nope",` + kid + `}`,
		"hdr escaped alg name":   `{"\u0061lg":"` + string(k.Alg) + `",` + kid + `}`,
		"hdr ALG":                `{"ALG":"` + string(k.Alg) + `",` + kid + `}`,
		"hdr crit":               `{` + alg + `,` + kid + `,"crit":["exp"],"exp":1}`,
		"hdr empty crit":         `{` + alg + `,` + kid + `,"crit":[]}`,
		"hdr b64 false":          `{` + alg + `,` + kid + `,"b64":false,"crit":["b64"]}`,
		"hdr typ JWT":            `{` + alg + `,` + kid + `,"typ":"JWT"}`,
		"hdr alg null":           `{"alg":null,` + kid + `}`,
		"hdr alg number":         `{"alg":256,` + kid + `}`,
		"hdr array":              `[` + alg + `]`,
		"hdr trailing garbage":   `{` + alg + `,` + kid + `}x`,
		"hdr two objects":        `{` + alg + `,` + kid + `}{}`,
		"hdr not UTF-8":          `{` + alg + `,` + kid + `,"x":"` + "\xff" + `"}`,
		"hdr jwk embedded":       `{` + alg + `,"jwk":{"kty":"oct","k":"AAAA"}}`,
		"hdr other alg, genuine": `{"alg":"` + otherAlg(k.Alg) + `",` + kid + `}`,
	} {
		out[name] = resign(k, h, payload)
	}
	// Claim edits, re-signed.
	var claims map[string]any
	_ = json.Unmarshal([]byte(payload), &claims)
	edit := func(kv ...any) string {
		c := map[string]any{}
		for k, v := range claims {
			c[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		b, _ := json.Marshal(c)
		return string(b)
	}
	exp := claims["exp"]
	hdr := string(b64d(parts[0]))
	body := strings.TrimSuffix(edit(), "}")
	for name, p := range map[string]string{
		"exp past":              edit("exp", diffNow.Add(-time.Hour).Unix()),
		"exp past within skew":  edit("exp", diffNow.Add(-10*time.Second).Unix()),
		"exp just past skew":    edit("exp", diffNow.Add(-diffSkew-time.Second).Unix()),
		"exp missing":           edit("exp", nil),
		"exp string":            edit("exp", fmt.Sprint(exp)),
		"exp null":              strings.Replace(edit(), fmt.Sprintf(`"exp":%v`, exp), `"exp":null`, 1),
		"exp negative":          edit("exp", -1),
		"exp huge":              strings.Replace(edit(), fmt.Sprintf(`"exp":%v`, exp), `"exp":1e400`, 1),
		"exp exponent":          strings.Replace(edit(), fmt.Sprintf(`"exp":%v`, exp), `"exp":1.9e9`, 1),
		"exp fraction":          edit("exp", float64(diffNow.Unix())+0.5),
		"exp twice, past last":  body + fmt.Sprintf(`,"exp":%d}`, diffNow.Add(-time.Hour).Unix()),
		"exp escaped name":      body + fmt.Sprintf(`,"\u0065xp":%d}`, diffNow.Add(-time.Hour).Unix()),
		"EXP":                   edit("exp", nil, "EXP", exp),
		"nbf future":            edit("nbf", diffNow.Add(time.Hour).Unix()),
		"nbf within skew":       edit("nbf", diffNow.Add(10*time.Second).Unix()),
		"iat future":            edit("iat", diffNow.Add(time.Hour).Unix()),
		"iat string":            edit("iat", "now"),
		"iss other":             edit("iss", "https://evil.example"),
		"iss case":              edit("iss", strings.ToUpper(diffIss)),
		"iss trailing slash":    edit("iss", diffIss+"/"),
		"iss missing":           edit("iss", nil),
		"iss number":            edit("iss", 1),
		"iss twice, other last": body + `,"iss":"https://evil.example"}`,
		"aud other":             edit("aud", "https://other.example"),
		"aud list":              edit("aud", []string{"x", diffAud}),
		"aud empty list":        edit("aud", []string{}),
		"aud missing":           edit("aud", nil),
		"aud number":            edit("aud", 7),
		"aud list with number":  edit("aud", []any{diffAud, 7}),
		"aud twice, right last": strings.Replace(body, `"aud":"`+diffAud+`"`, `"aud":"x"`, 1) + `,"aud":"` + diffAud + `"}`,
		"aud twice, wrong last": body + `,"aud":"x"}`,
		"sub number":            edit("sub", 42),
		"sub not UTF-8":         body + `,"team":"a` + "\xff" + `"}`,
		"payload array":         `[` + body[1:] + `]`,
		"payload null":          `null`,
		"payload garbage after": edit() + ` x`,
		"payload whitespace":    " \n" + edit() + "\t ",
		"payload empty":         ``,
		"scope list":            edit("scope", []string{"a", "b"}),
		"nested object":         edit("act", map[string]any{"sub": "x"}),
	} {
		out[name] = resign(k, hdr, p)
	}
	return out
}

func otherAlg(a jose.SignatureAlgorithm) string {
	switch a {
	case jose.RS256:
		return "PS256"
	case jose.PS256:
		return "RS256"
	case jose.ES256:
		return "ES384"
	case jose.ES384:
		return "ES256"
	}
	return "ES256"
}

// TestDifferentialAgainstGoJoseAndGolangJWT: see the comment at the top of
// this file. Deterministic (fixed seed for the mutations; the keys are
// fresh, so only signatures differ between runs) and quick.
func TestDifferentialAgainstGoJoseAndGolangJWT(t *testing.T) {
	keys := diffKeys(t)
	d := newDiffVerifiers(t, keys)
	m := &mutator{rng: mrand.New(mrand.NewPCG(7, 1862))}
	type tally struct{ total, bothAccept, weRefuseTheyAccept, libsDisagree int }
	var n tally
	stricter := map[string]int{} // reason → count, for the log
	var report []string
	for _, k := range keys {
		for ci, c := range []map[string]any{
			{"iss": diffIss, "sub": "s", "aud": diffAud, "exp": diffNow.Add(time.Hour).Unix(), "iat": diffNow.Unix()},
			{"iss": diffIss, "sub": "s", "aud": []string{"x", diffAud}, "exp": diffNow.Add(time.Minute).Unix(), "nbf": diffNow.Add(-time.Minute).Unix(), "scope": "a b"},
			{"iss": diffIss, "aud": diffAud, "exp": diffNow.Add(time.Hour).Unix(), "jti": "j", "client_id": "c"},
		} {
			payload, _ := json.Marshal(c)
			tok := verifiertest.SignRawHeader(k.Key, []byte(`{"alg":"`+string(k.Alg)+`","kid":"`+k.ID+`","typ":"JWT"}`), payload)
			muts := m.mutations(k, tok, string(payload))
			names := make([]string, 0, len(muts))
			for name := range muts {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				v := muts[name]
				n.total++
				_, ours := d.ours.Verify(context.Background(), v)
				gj, jo := d.golangJWT(v), d.goJose(v)
				label := fmt.Sprintf("%s/claims%d/%s", k.Alg, ci, name)
				if name == "genuine" && (ours != nil || gj != nil || jo != nil) {
					t.Fatalf("%s: a genuine token was refused: ours %v, golang-jwt %v, go-jose %v", label, ours, gj, jo)
				}
				if (gj == nil) != (jo == nil) {
					n.libsDisagree++
				}
				switch {
				case ours == nil && gj == nil && jo == nil:
					n.bothAccept++
				case ours == nil:
					for lib, err := range map[string]error{"golang-jwt": gj, "go-jose": jo} {
						if err == nil {
							continue
						}
						if sharedReason(err) {
							t.Errorf("%s: tokengate accepted a token %s refuses: %v\n\t%q", label, lib, err, v)
						} else {
							report = append(report, fmt.Sprintf("%s: accepted; %s refuses for a reason of its own: %v", label, lib, err))
						}
					}
				case gj == nil && jo == nil:
					n.weRefuseTheyAccept++
					stricter[Reason(ours)]++
				}
				if ours != nil && (!errors.Is(ours, ErrInvalidToken) || errors.Is(ours, ErrUnavailable)) {
					t.Errorf("%s: refused with %v, want a rejection (401)", label, ours)
				}
			}
		}
	}
	for _, r := range report {
		t.Log(r)
	}
	t.Logf("%d tokens: %d accepted by all three, %d refused only by tokengate %v; the libraries disagree on %d",
		n.total, n.bothAccept, n.weRefuseTheyAccept, stricter, n.libsDisagree)
	if n.total < 1000 {
		t.Fatalf("only %d tokens generated", n.total)
	}
}
