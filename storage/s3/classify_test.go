package s3

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"syscall"
	"testing"
)

// TestClassifyTransport: transport errors are retried as connection
// failures, except those no retry mends (an endpoint name that does not
// exist, a rejected certificate), which fail at once.
func TestClassifyTransport(t *testing.T) {
	wrap := func(err error) error { return &url.Error{Op: "Get", URL: "https://h/b", Err: err} }
	for _, c := range []struct {
		name  string
		err   error
		retry bool
	}{
		{"refused", wrap(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), true},
		{"reset", wrap(fmt.Errorf("read: %w", syscall.ECONNRESET)), true},
		{"dns temporary", wrap(&net.DNSError{Err: "server misbehaving", Name: "h", IsTemporary: true}), true},
		{"dns not found", wrap(&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "h", IsNotFound: true}}), false},
		{"unknown authority", wrap(x509.UnknownAuthorityError{}), false},
		{"wrong host", wrap(x509.HostnameError{Host: "h"}), false},
		{"plain", errors.New("EOF"), true},
	} {
		class, retry := classify(c.err)
		if retry != c.retry || (retry && class != ClassConnection) {
			t.Errorf("%s: classify = %v, %v; want retry %v", c.name, class, retry, c.retry)
		}
	}
}
