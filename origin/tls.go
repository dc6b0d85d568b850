package origin

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
)

// setRootCAs makes tr trust only the certificate authorities of
// cfg.CAFile, when set: an origin behind a private CA (MinIO with its own
// certificates) is verified against that CA, never with verification off.
func setRootCAs(tr *http.Transport, cfg S3Config) error {
	if cfg.CAFile == "" {
		return nil
	}
	if !cfg.Secure {
		return errors.New("origin: ca_file: needs secure: true")
	}
	pem, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return fmt.Errorf("origin: ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("origin: ca_file: %s holds no PEM certificate", cfg.CAFile)
	}
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tr.TLSClientConfig.RootCAs = pool
	return nil
}
