// Package checksum computes the SHA-256 digests, in lowercase hex, that the
// catalog records for a file's content and that edgectl and the bench
// harness check downloads and uploads against: one definition of the form
// the digest is compared in.
package checksum

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// bufSize is the read size: large reads cost fewer system calls on
// multi-GiB files, and the buffer lives only for the call.
const bufSize = 1 << 20

// SHA256 returns the lowercase hex SHA-256 of what r yields until EOF. A
// read error is returned as r gave it, for the caller to say what it read.
func SHA256(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.CopyBuffer(h, r, make([]byte, bufSize)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// FileSHA256 returns the lowercase hex SHA-256 of the file's content.
func FileSHA256(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("checksum: %w", err)
	}
	defer f.Close()
	sum, err := SHA256(f)
	if err != nil {
		return "", fmt.Errorf("checksum: hash %s: %w", name, err)
	}
	return sum, nil
}
