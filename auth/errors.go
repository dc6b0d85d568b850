package auth

import (
	"errors"
	"time"
)

// Error codes. They are stable strings: the proxy puts them in response
// bodies and metrics labels, and operators grep logs for them.
const (
	CodeTokenMissing     = "token_missing"
	CodeTokenInvalid     = "token_invalid"
	CodeTokenWrongFile   = "token_wrong_file"
	CodeIPNotAllowed     = "ip_not_allowed"
	CodeUsesExhausted    = "uses_exhausted"
	CodeAuthUnavailable  = "auth_unavailable"
	CodeTooManyAttempts  = "too_many_attempts"
	CodeSignatureInvalid = "signature_invalid"
	CodeSignatureExpired = "signature_expired"
)

// Error is the error every check in this package returns when it refuses a
// request. Status is the HTTP status the proxy should answer with (a plain
// int so that auth needs no HTTP types). Err, when set, is the underlying
// cause; it is for logs and must never be shown to the client.
type Error struct {
	Code   string
	Status int
	// RetryAfter is set for auth_unavailable and too_many_attempts: how long
	// the client should wait before trying again.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return "auth: " + e.Code + ": " + e.Err.Error()
	}
	return "auth: " + e.Code
}

func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same Code, so callers can
// write errors.Is(err, auth.ErrTokenInvalid) whatever the cause or RetryAfter.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinels for errors.Is; each Verify/Signer error matches exactly one.
var (
	ErrTokenMissing     = &Error{Code: CodeTokenMissing, Status: 401}
	ErrTokenInvalid     = &Error{Code: CodeTokenInvalid, Status: 401}
	ErrTokenWrongFile   = &Error{Code: CodeTokenWrongFile, Status: 403}
	ErrIPNotAllowed     = &Error{Code: CodeIPNotAllowed, Status: 403}
	ErrUsesExhausted    = &Error{Code: CodeUsesExhausted, Status: 403}
	ErrAuthUnavailable  = &Error{Code: CodeAuthUnavailable, Status: 503}
	ErrTooManyAttempts  = &Error{Code: CodeTooManyAttempts, Status: 429}
	ErrSignatureInvalid = &Error{Code: CodeSignatureInvalid, Status: 403}
	ErrSignatureExpired = &Error{Code: CodeSignatureExpired, Status: 403}
)

// ErrTokenNotFound is returned by Revoke when no such token exists (it still
// broadcasts the revocation, so stale caches elsewhere are dropped).
var ErrTokenNotFound = errors.New("auth: token not found")

// ErrInvalidSpec marks a token spec or file record an admin call may not
// store (the caller's mistake, not the store's).
var ErrInvalidSpec = errors.New("invalid")

// ErrFileNotFound is returned by Catalog.Lookup when no file has the id.
var ErrFileNotFound = errors.New("auth: file not found")

// refuse returns a fresh *Error with the sentinel's code and status and the
// given cause, so the sentinels themselves are never mutated or shared.
func refuse(sentinel *Error, cause error) *Error {
	return &Error{Code: sentinel.Code, Status: sentinel.Status, Err: cause}
}

// Redact shortens a token for logs: its first four characters and an
// ellipsis, enough to correlate log lines without making the token usable.
// Tokens of eight characters or fewer are fully hidden.
func Redact(token string) string {
	if len(token) <= 8 {
		return "…"
	}
	return token[:4] + "…"
}
