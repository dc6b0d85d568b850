package origin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "timeout awaiting response headers" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassify(t *testing.T) {
	resp := func(code string, status int) error {
		return minio.ErrorResponse{Code: code, StatusCode: status, Message: "msg " + code}
	}
	refused := &url.Error{Op: "Head", URL: "http://127.0.0.1:1/b/k",
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	reset := &url.Error{Op: "Get", URL: "http://127.0.0.1:1/b/k",
		Err: &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}}
	for _, tc := range []struct {
		err       error
		want      error
		retryable bool
	}{
		{resp(minio.NoSuchKey, 404), ErrNotFound, false},
		{resp(minio.NoSuchBucket, 404), ErrNotFound, false},
		{resp("", 404), ErrNotFound, false},
		{resp(minio.InvalidBucketName, 400), ErrNotFound, false},
		{resp(minio.XMinioInvalidObjectName, 400), ErrNotFound, false},
		{resp(minio.PreconditionFailed, 412), ErrChanged, false},
		{resp("412 Precondition Failed", 412), ErrChanged, false},
		{resp(minio.InvalidRange, 416), ErrChanged, false},
		{resp(minio.AccessDenied, 403), ErrUnavailable, false},
		{resp("SignatureDoesNotMatch", 403), ErrUnavailable, false},
		{resp("InvalidAccessKeyId", 403), ErrUnavailable, false},
		{resp("BadRequest", 400), ErrUnavailable, false},
		{resp("SlowDown", 503), ErrUnavailable, true},
		{resp("InternalError", 500), ErrUnavailable, true},
		{resp("502 Bad Gateway", 502), ErrUnavailable, true},
		{resp(minio.InternalError, 0), ErrUnavailable, false}, // made up by the client from bad headers
		{refused, ErrUnavailable, true},
		{reset, ErrUnavailable, true},
		{&url.Error{Op: "Get", URL: "u", Err: errors.New("Connection closed by foreign host u. Retry again.")}, ErrUnavailable, true},
		{&url.Error{Op: "Get", URL: "u", Err: timeoutErr{}}, ErrTimeout, false},
		{&url.Error{Op: "Get", URL: "u", Err: context.DeadlineExceeded}, ErrTimeout, false},
		{context.DeadlineExceeded, ErrTimeout, false},
		{&url.Error{Op: "Get", URL: "u", Err: context.Canceled}, nil, false},
		{fmt.Errorf("wrapped: %w", resp(minio.NoSuchKey, 404)), ErrNotFound, false},
		{io.ErrUnexpectedEOF, ErrUnavailable, true},
	} {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("classify(%v) = %v, want %v", tc.err, got, tc.want)
		}
		if got := retryable(tc.err); got != tc.retryable {
			t.Errorf("retryable(%v) = %v, want %v", tc.err, got, tc.retryable)
		}
	}
}

func TestS3ErrorKeepsBoth(t *testing.T) {
	orig := minio.ErrorResponse{Code: minio.NoSuchKey, StatusCode: 404, Message: "The specified key does not exist.", RequestID: "RID"}
	err := s3Error("stat", "b", "k", orig)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("%v is not ErrNotFound", err)
	}
	var got minio.ErrorResponse
	if !errors.As(err, &got) || got.RequestID != "RID" {
		t.Fatalf("%v lost the store's error", err)
	}
	const want = "origin: stat b/k: origin: object not found: The specified key does not exist."
	if err.Error() != want {
		t.Fatalf("text %q, want %q", err.Error(), want)
	}
	cancelled := s3Error("open", "b", "k", context.Canceled)
	for _, s := range []error{ErrNotFound, ErrChanged, ErrUnavailable, ErrTimeout} {
		if errors.Is(cancelled, s) {
			t.Fatalf("cancellation %v carries %v", cancelled, s)
		}
	}
	if !errors.Is(cancelled, context.Canceled) {
		t.Fatalf("%v is not context.Canceled", cancelled)
	}
}

func TestBackoff(t *testing.T) {
	r := retrier{retries: 10, base: 40 * time.Millisecond}
	for attempt, nominal := range []time.Duration{40, 80, 160, 320, 640, 1280, 2000, 2000, 2000} {
		nominal *= time.Millisecond
		if nominal > 1280*time.Millisecond {
			nominal = maxBackoff
		}
		for range 50 {
			d := r.backoff(attempt)
			if d < nominal/2 || d >= nominal {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v)", attempt, d, nominal/2, nominal)
			}
		}
	}
	if d := (retrier{base: time.Hour}).backoff(0); d >= maxBackoff {
		t.Fatalf("backoff with a 1h base = %v, want below the cap %v", d, maxBackoff)
	}
}

func TestRetrierStops(t *testing.T) {
	transient := minio.ErrorResponse{Code: "SlowDown", StatusCode: 503}
	final := minio.ErrorResponse{Code: minio.NoSuchKey, StatusCode: 404}
	for _, tc := range []struct {
		name    string
		retries int
		errs    []error
		calls   int
		want    error
	}{
		{"success", 2, []error{nil}, 1, nil},
		{"transient then success", 2, []error{transient, transient, nil}, 3, nil},
		{"transient exhausts", 2, []error{transient, transient, transient, nil}, 3, transient},
		{"final at once", 5, []error{final, nil}, 1, final},
		{"transient then final", 5, []error{transient, final, nil}, 2, final},
		{"no retries", 0, []error{transient, nil}, 1, transient},
	} {
		calls := 0
		err := retrier{retries: tc.retries, base: time.Microsecond}.do(context.Background(), func() error {
			e := tc.errs[calls]
			calls++
			return e
		})
		if calls != tc.calls || err != tc.want {
			t.Errorf("%s: %d calls, err %v; want %d, %v", tc.name, calls, err, tc.calls, tc.want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	start := time.Now()
	err := retrier{retries: 5, base: time.Hour}.do(ctx, func() error {
		calls++
		cancel()
		return transient
	})
	if calls != 1 || err != error(transient) || time.Since(start) > 10*time.Second {
		t.Fatalf("cancel during backoff: %d calls, %v", calls, err)
	}
}
