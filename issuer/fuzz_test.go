package issuer

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzParseTokenRequest: any body, content type and Authorization header
// either parse into a request with a grant type, or give an RFC 6749 error
// with a status and code. Nothing panics; the secret never lands in the
// error description.
func FuzzParseTokenRequest(f *testing.F) {
	f.Add("application/x-www-form-urlencoded", "grant_type=client_credentials&client_id=a&client_secret=b", "")
	f.Add("application/json", `{"grant_type":"client_credentials","client_id":"a","client_secret":"b","scope":"*"}`, "")
	f.Add("multipart/form-data; boundary=X", "--X\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nclient_credentials\r\n--X--\r\n", "Basic YTpi")
	f.Add("", "grant_type=client_credentials", "Basic %%%")
	f.Add("application/json", `{"grant_type":1}`, "Bearer x")
	f.Add("text/plain", "", "Basic YSUyMDpiJTJG")
	f.Fuzz(func(t *testing.T, ct, body, auth string) {
		r := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(body))
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		tr, err := parseTokenRequest(httptest.NewRecorder(), r)
		if err == nil {
			if tr.grantType == "" {
				t.Fatal("parsed request without grant_type")
			}
			return
		}
		oe, ok := err.(*oauthError)
		if !ok || oe.status < 400 || oe.code == "" {
			t.Fatalf("error outside RFC 6749 §5.2: %#v", err)
		}
		if tr != nil {
			t.Fatal("request returned with an error")
		}
	})
}
