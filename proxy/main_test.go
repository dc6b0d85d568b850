package proxy_test

import (
	"testing"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// TestMain stops the shared MinIO server that the end-to-end tests start.
func TestMain(m *testing.M) { testenv.Main(m) }
