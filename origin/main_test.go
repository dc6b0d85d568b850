package origin

import (
	"testing"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
