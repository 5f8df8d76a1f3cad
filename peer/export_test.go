package peer

import "time"

// The protocol's internals, for the tests of package peer_test (which also
// import ops, the importer of this package).
var (
	SignRequest   = signRequest
	VerifyRequest = verifyRequest
	AnswerMAC     = answerMAC
	B64           = b64
)

const HeaderAnswer = headerAnswer

type UsageAnswers = usageAnswers

// SetClock makes signatures with f until the returned func restores the
// clock.
func SetClock(f func() time.Time) (restore func()) {
	old := clock
	clock = f
	return func() { clock = old }
}
