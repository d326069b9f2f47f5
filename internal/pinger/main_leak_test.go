package pinger

import (
	"testing"

	"github.com/tokengate/tokengate/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.Main(m) }
