package signature

import (
	"net/http"
	"strings"
	"testing"
)

// TestReadingAgreesWithTheParser: the notes Read gives for each header
// flag a problem exactly when the verifier's own parser refuses the
// headers, for every scheme and the usual ways a header is wrong.
func TestReadingAgreesWithTheParser(t *testing.T) {
	hex64 := strings.Repeat("ab", 32)
	b64 := "qBvrsZF7RfB1iS6BX6IHqJTp5L911P7intnPeTPsH0I="
	tests := []struct {
		scheme string
		h      http.Header
	}{
		{GitHub, http.Header{"X-Hub-Signature-256": {"sha256=" + hex64}}},
		{GitHub, http.Header{}},
		{GitHub, http.Header{"X-Hub-Signature": {"sha1=00"}}},
		{GitHub, http.Header{"X-Hub-Signature-256": {hex64}}},
		{GitHub, http.Header{"X-Hub-Signature-256": {"sha256=" + hex64[:62]}}},
		{GitHub, http.Header{"X-Hub-Signature-256": {"sha256=" + strings.Repeat("zz", 32)}}},
		{Shopify, http.Header{"X-Shopify-Hmac-Sha256": {b64}}},
		{Shopify, http.Header{"X-Shopify-Hmac-Sha256": {hex64}}},
		{Shopify, http.Header{"X-Shopify-Hmac-Sha256": {b64[:40]}}},
		{Shopify, http.Header{"X-Shopify-Hmac-Sha256": {strings.Repeat("*", 44)}}},
		{Stripe, http.Header{"Stripe-Signature": {"t=1492774577,v1=" + hex64 + ",v0=00"}}},
		{Stripe, http.Header{"Stripe-Signature": {"v1=" + hex64}}},
		{Stripe, http.Header{"Stripe-Signature": {"t=1492774577000,v1=" + hex64}}},
		{Stripe, http.Header{"Stripe-Signature": {"t=1492774577,v0=" + hex64}}},
		{Stripe, http.Header{"Stripe-Signature": {"t=1492774577,v1=abc"}}},
		{StandardWebhooks, http.Header{"Webhook-Id": {"m"}, "Webhook-Timestamp": {"1614265330"}, "Webhook-Signature": {"v1," + b64}}},
		{StandardWebhooks, http.Header{"Webhook-Timestamp": {"1614265330"}, "Webhook-Signature": {"v1," + b64}}},
		{StandardWebhooks, http.Header{"Webhook-Id": {"m"}, "Webhook-Timestamp": {"1614265330000"}, "Webhook-Signature": {"v1," + b64}}},
		{StandardWebhooks, http.Header{"Webhook-Id": {"m"}, "Webhook-Timestamp": {"1614265330"}, "Webhook-Signature": {"v2," + b64}}},
		{StandardWebhooks, http.Header{"Webhook-Id": {"m"}, "Webhook-Timestamp": {"1614265330"}, "Webhook-Signature": {"v1a," + b64}}},
		{StandardWebhooks, http.Header{"Webhook-Id": {"m"}, "Webhook-Timestamp": {"1614265330"}, "Webhook-Signature": {"v1,!!" + b64}}},
	}
	for _, tc := range tests {
		r, err := Read(tc.scheme, tc.h)
		if err != nil {
			t.Fatal(err)
		}
		_, perr := schemes[tc.scheme].parse(tc.h)
		allOK := true
		for _, h := range r.Headers {
			allOK = allOK && h.OK
		}
		if (r.Err == nil) != (perr == nil) || allOK != (perr == nil) {
			t.Errorf("%s %v: parser says %v, Read says %v with headers %+v", tc.scheme, tc.h, perr, r.Err, r.Headers)
		}
	}
}

// TestReadingSignsLikeVerify: for every published vector, the content
// Read shows is what the scheme signs, the configured secret signs it,
// and a one-byte change of the body does not.
func TestReadingSignsLikeVerify(t *testing.T) {
	for _, v := range vectors {
		r, err := Read(v.scheme, v.header)
		if err != nil || r.Err != nil {
			t.Fatalf("%s: %v %v", v.name, err, r.Err)
		}
		k, err := DecodeSecret(v.scheme, v.secrets[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := r.Signs(k, []byte(v.body)); !ok {
			t.Errorf("%s: the secret does not sign the vector", v.name)
		}
		if _, ok := r.Signs(k, []byte(v.body+" ")); ok {
			t.Errorf("%s: a changed body is signed", v.name)
		}
		if got := string(r.Content([]byte(v.body))); !strings.HasSuffix(got, v.body) || (v.at.IsZero() != (got == v.body)) {
			t.Errorf("%s: content %q", v.name, got)
		}
		for _, s := range v.secrets {
			if strings.Contains(k.Form, s) {
				t.Errorf("%s: the form %q names the secret", v.name, k.Form)
			}
			for _, o := range OtherReadings(v.scheme, s) {
				if strings.Contains(o.Form, s) {
					t.Errorf("%s: the form %q names the secret", v.name, o.Form)
				}
				if _, ok := r.Signs(o, []byte(v.body)); ok {
					t.Errorf("%s: another reading (%s) signs what only the scheme's reading should", v.name, o.Form)
				}
			}
		}
	}
}
