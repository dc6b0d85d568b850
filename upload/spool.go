package upload

import (
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// spool is the local file that assembles the next S3 part: bytes
// [start, size) of it are not in S3 yet. Parts are cut from it at PartSize;
// it never holds more than PartSize bytes, except for a checksummed PATCH,
// which must be whole before any of it is kept (at most 2 x PartSize).
//
// The spool computes each part's CRC32C (the checksum the store checks,
// see partOptions) while the bytes are written, so that a part is read
// from disk once, to be sent, instead of once more to be summed. That
// works because parts are only ever cut from start in runs of partSize,
// the last one possibly shorter (partCRC refuses any other cut): the
// pending bytes are whole runs, each with its CRC in crcs, then run bytes
// with the CRC crc so far.
type spool struct {
	f           *os.File
	start, size int64
	partSize    int64
	crcs        []uint32 // CRC32C of each whole run of partSize pending bytes, oldest first
	crc         uint32   // CRC32C of the run bytes written after them
	run         int64
	// kept: the tail cache owns f now; close leaves it.
	kept bool
}

func (u *Uploads) newSpool() (*spool, error) {
	f, err := os.CreateTemp(u.cfg.TempDir, "edgeproxy-upload-*")
	if err != nil {
		return nil, fmt.Errorf("upload: spool: %w", err)
	}
	return &spool{f: f, partSize: u.cfg.PartSize}, nil
}

func (s *spool) close() {
	if s.kept {
		return
	}
	s.f.Close()
	os.Remove(s.f.Name())
}

func (s *spool) pending() int64 { return s.size - s.start }

// write appends p and adds it to the checksums of the parts it falls in.
func (s *spool) write(p []byte) error {
	if _, err := s.f.WriteAt(p, s.size); err != nil {
		return fmt.Errorf("upload: spool: %w", err)
	}
	s.size += int64(len(p))
	for len(p) > 0 {
		k := min(int64(len(p)), s.partSize-s.run)
		s.crc = crc32.Update(s.crc, castagnoli, p[:k])
		s.run += k
		p = p[k:]
		if s.run == s.partSize {
			s.crcs = append(s.crcs, s.crc)
			s.crc, s.run = 0, 0
		}
	}
	return nil
}

// Write is write as an io.Writer, to fill the spool from a reader.
func (s *spool) Write(p []byte) (int, error) {
	if err := s.write(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// adopt makes f, whose first n bytes are a tail with CRC32C crc (kept by
// the tail cache), the spool's file. n must be below partSize: the bytes
// are one run.
func (s *spool) adopt(f *os.File, n int64, crc uint32) {
	s.close()
	s.f, s.start, s.size = f, 0, n
	s.crcs, s.crc, s.run = s.crcs[:0], crc, n
}

// section returns n pending bytes from the start.
func (s *spool) section(n int64) *io.SectionReader { return io.NewSectionReader(s.f, s.start, n) }

// partCRC returns the CRC32C of section(n), which must be the next part:
// partSize bytes when a whole run is pending, else every pending byte.
func (s *spool) partCRC(n int64) (uint32, error) {
	switch {
	case len(s.crcs) > 0 && n == s.partSize:
		return s.crcs[0], nil
	case len(s.crcs) == 0 && n == s.run:
		return s.crc, nil
	}
	return 0, fmt.Errorf("upload: bug: a part of %d bytes cut from %d pending (part size %d, %d whole runs)", n, s.pending(), s.partSize, len(s.crcs))
}

// consumed marks n bytes as in S3 (a cut partCRC accepted); the file
// restarts when it is empty, so it never grows past one part.
func (s *spool) consumed(n int64) error {
	if _, err := s.partCRC(n); err != nil {
		return err
	}
	if len(s.crcs) > 0 && n == s.partSize {
		s.crcs = s.crcs[1:]
	} else {
		s.crc, s.run = 0, 0
	}
	s.start += n
	if s.start == s.size {
		s.start, s.size = 0, 0
		s.crcs = s.crcs[:0]
		return s.f.Truncate(0)
	}
	return nil
}
