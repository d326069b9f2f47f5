package egress

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/egress/egresstest"
)

// TestStatusTellsTheTokenStateWithoutTheToken: Status reports a token
// held, its expiry and refresh time, the last result and the callers that
// had to wait; after a failed request it reports the failure, redacted;
// never the token or the secret.
func TestStatusTellsTheTokenStateWithoutTheToken(t *testing.T) {
	e := egresstest.NewTokenEndpoint(testID, testSecret, time.Hour)
	defer e.Close()
	s := newTestSource(e, nil)
	defer s.Close()
	if st := s.Status(); st.Held || st.LastResult != "" || st.Waits != 0 {
		t.Fatalf("before any request: %+v", st)
	}
	tok, err := s.Token(context.Background()) // no token yet: this caller waits
	if err != nil {
		t.Fatal(err)
	}
	st := s.Status()
	if !st.Held || st.LastResult != "success" || st.Waits != 1 || st.Failures != 0 || st.LastError != "" ||
		!st.Expiry.Equal(tok.Expiry.Round(0)) || !st.RefreshAt.After(st.Obtained) || !st.RefreshAt.Before(st.Expiry) {
		t.Fatalf("with a token: %+v", st)
	}
	if strings.Contains(strings.ToLower(st.Scope+st.LastError+st.LastResult), strings.ToLower(tok.Value)) {
		t.Fatal("the token is in the status")
	}

	e.Script(func(int) egresstest.Answer {
		return egresstest.Answer{Status: http.StatusUnauthorized, Body: `{"error":"invalid_client","error_description":"secret ` + testSecret + ` refused"}`}
	})
	if !s.Invalidate(tok) {
		t.Fatal("the token could not be dropped")
	}
	if _, err := s.Token(context.Background()); err == nil {
		t.Fatal("a token after invalid_client")
	}
	st = s.Status()
	if st.Held || st.LastResult != "invalid_client" || st.Failures != 1 || st.Waits != 2 ||
		!strings.Contains(st.LastError, "[redacted]") || strings.Contains(st.LastError, testSecret) {
		t.Fatalf("after a refused request: %+v", st)
	}
}
