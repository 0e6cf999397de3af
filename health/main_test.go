package health

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	runPermHelper()
	goleak.VerifyTestMain(m)
}
