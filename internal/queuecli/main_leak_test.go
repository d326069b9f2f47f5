package queuecli

import (
	"testing"

	"github.com/tokengate/tokengate/internal/leaktest"
)

// TestMain fails the package's tests if any goroutine outlives them.
func TestMain(m *testing.M) { leaktest.Main(m) }
