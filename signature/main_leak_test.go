package signature

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them (a
// release retried in the background included).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
