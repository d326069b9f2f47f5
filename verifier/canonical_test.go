package verifier

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

const b64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// respellings returns every other spelling of the last character of a
// base64url segment that decodes (leniently) to the same bytes: the unused
// low bits of the last character set in all other ways.
func respellings(seg string) []string {
	unused := map[int]uint{2: 4, 3: 2}[len(seg)%4] // 2 chars → 8 bits of 12; 3 chars → 16 of 18
	if unused == 0 {
		return nil
	}
	last := strings.IndexByte(b64url, seg[len(seg)-1])
	var out []string
	for low := 1; low < 1<<unused; low++ {
		out = append(out, seg[:len(seg)-1]+string(b64url[last&^(1<<unused-1)|low]))
	}
	return out
}

// TestOnlyTheCanonicalSpellingOfATokenVerifies: base64url (RFC 7515 §2,
// RFC 4648 §3.5) has one spelling per byte string; the unused bits of the
// last character set, or a line break inside a segment, make another token
// that decodes alike. Each would verify and take its own cache entry (one
// issued token, 16 cache keys). Every other spelling is refused, and the
// cache holds the one real token.
func TestOnlyTheCanonicalSpellingOfATokenVerifies(t *testing.T) {
	idp := verifiertest.New()
	defer idp.Close()
	j := newJWT(t, idp, nil)
	cache, err := NewCache(j, CacheOptions{MaxEntries: 100, MaxTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok := idp.Mint(idp.Claims(aud, "webhooks:write")) // RS256: 256-byte signature, 4 spare bits
	if _, err := cache.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	var variants []string
	for i := range parts {
		for _, s := range respellings(parts[i]) {
			p := append([]string(nil), parts...)
			p[i] = s
			variants = append(variants, strings.Join(p, "."))
		}
		for _, brk := range []string{"\n", "\r", "\r\n"} {
			p := append([]string(nil), parts...)
			p[i] = p[i][:4] + brk + p[i][4:]
			variants = append(variants, strings.Join(p, "."))
		}
	}
	if len(variants) < 15+9 {
		t.Fatalf("only %d variants: the signature should have 15 other spellings", len(variants))
	}
	accepted := 0
	for _, v := range variants {
		_, err := cache.Verify(ctx, v)
		if err == nil {
			accepted++
			continue
		}
		if !errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrUnavailable) {
			t.Errorf("variant %q: err = %v, want ErrInvalidToken", v, err)
		}
	}
	if accepted > 0 || cache.Len() != 1 {
		t.Fatalf("%d of %d other spellings of one token verified; the cache holds %d entries, want 1", accepted, len(variants), cache.Len())
	}
}

// TestClaimsThatAreNotUTF8AreRefused: JSON text is UTF-8 (RFC 8259 §8.1).
// A payload with other bytes inside a string would give "sub" the raw
// bytes while the decoded claim map holds U+FFFD, so a policy and a header
// would see two different subjects; it is refused, as is such a header.
func TestClaimsThatAreNotUTF8AreRefused(t *testing.T) {
	idp := verifiertest.New()
	defer idp.Close()
	j := newJWT(t, idp, func(o *JWTOptions) { o.KeepClaims = true })
	exp := time.Now().Add(time.Hour).Unix()
	payload := func(members string) []byte {
		return fmt.Appendf(nil, `{"iss":%q,"aud":%q,"exp":%d,%s}`, idp.Issuer(), aud, exp, members)
	}
	for name, tok := range map[string]string{
		"sub":        verifiertest.SignRaw(idp.Signer(), payload("\"sub\":\"ad\xffmin\""), nil),
		"scope":      verifiertest.SignRaw(idp.Signer(), payload("\"sub\":\"s\",\"scope\":\"\xc0\xafadmin\""), nil),
		"other":      verifiertest.SignRaw(idp.Signer(), payload("\"sub\":\"s\",\"team\":\"\xed\xa0\x80\""), nil),
		"header":     verifiertest.SignRawHeader(idp.Signer(), []byte("{\"alg\":\"RS256\",\"kid\":\""+idp.Signer().ID+"\",\"x\":\"\xff\"}"), payload(`"sub":"s"`)),
		"utf8 is ok": verifiertest.SignRaw(idp.Signer(), payload(`"sub":"ad‐min"`), nil),
	} {
		t.Run(name, func(t *testing.T) {
			p, err := j.Verify(context.Background(), tok)
			if name == "utf8 is ok" {
				if err != nil || p.Subject != "ad‐min" {
					t.Fatalf("valid UTF-8: %v %v", p, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("accepted (sub %q, claims %v) or wrong error: %v", subject(p), claimsOf(p), err)
			}
			if testing.Verbose() {
				t.Log(err)
			}
		})
	}
}

func subject(p *Principal) string {
	if p == nil {
		return ""
	}
	return p.Subject
}

func claimsOf(p *Principal) map[string]any {
	if p == nil {
		return nil
	}
	return p.Claims
}

// TestScopeListsOfTwoTokensAreNeverConflated: the interner shares equal
// lists between principals. Keyed by a NUL-joined string, ["a\x00b","c"]
// and ["a","b","c"] were one list, so a token granted the odd scope
// "a\x00b" came out holding the other token's scope "b".
func TestScopeListsOfTwoTokensAreNeverConflated(t *testing.T) {
	idp := verifiertest.New()
	defer idp.Close()
	j := newJWT(t, idp, nil)
	ctx := context.Background()
	if _, err := j.Verify(ctx, idp.Mint(idp.Claims(aud, "a", "b", "c"))); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		claims map[string]any
		want   []string
	}{
		{with(idp.Claims(aud), "scope", "a\x00b c"), []string{"a\x00b", "c"}},
		{with(idp.Claims(aud), "scope", nil, "scp", []string{"a\x00b\x00c"}), []string{"a\x00b\x00c"}},
		{with(idp.Claims("a\x00" + aud)), nil}, // audience list ["a\x00…"] vs ["a", …]
	} {
		p, err := j.Verify(ctx, idp.Mint(tc.claims))
		if tc.want == nil {
			if err == nil {
				t.Fatalf("audience %q accepted as %q", tc.claims["aud"], p.Audience)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprintf("%q", p.Scopes) != fmt.Sprintf("%q", tc.want) || p.HasScope("b") {
			t.Fatalf("scopes = %q, want %q", p.Scopes, tc.want)
		}
	}
}

// TestInternerKeysAreUnambiguous checks the interner directly on lists
// whose NUL-joined spellings collide.
func TestInternerKeysAreUnambiguous(t *testing.T) {
	in := newInterner()
	for _, pair := range [][2][]string{
		{{"a", "b", "c"}, {"a\x00b", "c"}},
		{{"a", "b"}, {"a\x00b"}},
		{{"", "x"}, {"\x00x"}},
		{{"ab"}, {"a", "b"}},
	} {
		first, second := in.list(pair[0]), in.list(pair[1])
		if fmt.Sprintf("%q", first) != fmt.Sprintf("%q", pair[0]) || fmt.Sprintf("%q", second) != fmt.Sprintf("%q", pair[1]) {
			t.Fatalf("interned %q as %q and %q as %q", pair[0], first, pair[1], second)
		}
	}
}
