// Package leaktest is the one TestMain of every package that starts
// goroutines: a package's tests fail when a goroutine outlives them.
//
//	func TestMain(m *testing.M) { leaktest.Main(m) }
package leaktest

import (
	"fmt"
	"net/http"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// Main runs the tests, then fails them if any goroutine is left. Idle
// keep-alive connections of the shared default transport (used by test
// clients and by go-oidc discovery) belong to the clients, not to
// tokengate: they are closed first.
func Main(m *testing.M) {
	code := m.Run()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
