package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

// On-disk chunk file format, version 2. All integers little-endian.
//
//	0        magic "EPC2"
//	4        crc32c (Castagnoli) of the rest of the header, bytes 8 to dataOff
//	8        chunk index (uint64)
//	16       data length (uint64)
//	24       bucket length, key length, ETag length (uint16 each)
//	30       log2 of the block size (uint8), zero (uint8)
//	32       bucket, key, ETag
//	...      crc32c of each 16 KiB block of data (uint32 each; the last may be short)
//	dataOff  data
//
// Integrity is checked at the granularity of reads: a reader verifies the
// header (identity, lengths and the block table) once per open and then only
// the blocks its range touches, so a 64 KiB range of a 1 MiB chunk reads and
// checks 64 to 80 KiB instead of the whole file. The identity inside the
// header turns a hash collision in the file name into a miss instead of
// wrong bytes; the lengths make truncation and trailing garbage detectable
// before any data is read. Version 1 (one checksum over the whole file) had
// its own file names, so start-up recognises and deletes such files by name
// without opening them.
const (
	fileMagic      = "EPC2"
	fileHeaderLen  = 32 // fixed part of the header
	maxIdentLen    = 1<<16 - 1
	diskBlockShift = 14
	// diskBlockSize is the unit of verification: small enough that a range
	// verifies little more than it serves. Reads are larger (diskReadSize),
	// so small blocks do not mean more syscalls (see "Disk tier" in
	// docs/design.md).
	diskBlockSize = 1 << diskBlockShift
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt marks a chunk file that must not be served.
var errCorrupt = errors.New("corrupt chunk file")

// fileHeader is a parsed chunk file header; the identity fields and sums
// alias the buffer it was parsed from.
type fileHeader struct {
	idx               int64
	dataLen           int64
	dataOff           int64 // offset of the data in the file: the header's length
	bucket, key, etag []byte
	sums              []byte // the block table, 4 bytes per block
}

// blocks returns how many blocks hold n bytes of data.
func blocks(n int64) int64 { return (n + diskBlockSize - 1) >> diskBlockShift }

// blockSum returns the recorded checksum of block i.
func (h *fileHeader) blockSum(i int64) uint32 {
	return binary.LittleEndian.Uint32(h.sums[4*i:])
}

// encodeHeader returns the header of the chunk file for ch, checksums
// included, or an error if the identity does not fit the format.
func encodeHeader(ch *chunk) ([]byte, error) {
	id := ch.id
	if len(id.bucket) > maxIdentLen || len(id.key) > maxIdentLen || len(id.etag) > maxIdentLen {
		return nil, fmt.Errorf("identity of %d+%d+%d bytes does not fit a chunk file", len(id.bucket), len(id.key), len(id.etag))
	}
	n := blocks(int64(len(ch.data)))
	h := make([]byte, fileHeaderLen, fileHeaderLen+len(id.bucket)+len(id.key)+len(id.etag)+4*int(n))
	copy(h, fileMagic)
	binary.LittleEndian.PutUint64(h[8:], uint64(ch.idx))
	binary.LittleEndian.PutUint64(h[16:], uint64(len(ch.data)))
	binary.LittleEndian.PutUint16(h[24:], uint16(len(id.bucket)))
	binary.LittleEndian.PutUint16(h[26:], uint16(len(id.key)))
	binary.LittleEndian.PutUint16(h[28:], uint16(len(id.etag)))
	h[30] = diskBlockShift
	h = append(h, id.bucket...)
	h = append(h, id.key...)
	h = append(h, id.etag...)
	for data := ch.data; len(data) > 0; {
		b := data[:min(len(data), diskBlockSize)]
		h = binary.LittleEndian.AppendUint32(h, crc32.Checksum(b, castagnoli))
		data = data[len(b):]
	}
	binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(h[8:], castagnoli))
	return h, nil
}

// headerLen checks the fixed part of a header (b holds at least its first
// fileHeaderLen bytes, or the file is shorter) and returns the length of
// the whole header, which is where the data starts.
func headerLen(b []byte) (int64, error) {
	if len(b) < fileHeaderLen || string(b[:4]) != fileMagic {
		return 0, fmt.Errorf("%w: bad magic or short header", errCorrupt)
	}
	idx := binary.LittleEndian.Uint64(b[8:])
	dataLen := binary.LittleEndian.Uint64(b[16:])
	if b[30] != diskBlockShift || b[31] != 0 || idx > 1<<62 || dataLen > maxChunkSize {
		return 0, fmt.Errorf("%w: bad header fields", errCorrupt)
	}
	bl := int64(binary.LittleEndian.Uint16(b[24:]))
	kl := int64(binary.LittleEndian.Uint16(b[26:]))
	el := int64(binary.LittleEndian.Uint16(b[28:]))
	return fileHeaderLen + bl + kl + el + 4*blocks(int64(dataLen)), nil
}

// parseHeader checks a whole header (b holds at least headerLen(b) bytes;
// more is ignored) against its checksum.
func parseHeader(b []byte) (fileHeader, error) {
	var h fileHeader
	n, err := headerLen(b)
	if err != nil {
		return h, err
	}
	if int64(len(b)) < n {
		return h, fmt.Errorf("%w: header of %d bytes cut at %d", errCorrupt, n, len(b))
	}
	if crc32.Checksum(b[8:n], castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return h, fmt.Errorf("%w: header checksum mismatch", errCorrupt)
	}
	bl := int(binary.LittleEndian.Uint16(b[24:]))
	kl := int(binary.LittleEndian.Uint16(b[26:]))
	el := int(binary.LittleEndian.Uint16(b[28:]))
	identEnd := fileHeaderLen + bl + kl + el
	h.idx = int64(binary.LittleEndian.Uint64(b[8:]))
	h.dataLen = int64(binary.LittleEndian.Uint64(b[16:]))
	h.dataOff = n
	h.bucket = b[fileHeaderLen : fileHeaderLen+bl]
	h.key = b[fileHeaderLen+bl : fileHeaderLen+bl+kl]
	h.etag = b[fileHeaderLen+bl+kl : identEnd]
	h.sums = b[identEnd:n]
	return h, nil
}

// verifyBlock reports whether data is block i as the header recorded it,
// length included.
func (h *fileHeader) verifyBlock(i int64, data []byte) bool {
	want := min(h.dataLen-i<<diskBlockShift, diskBlockSize)
	return i >= 0 && i < blocks(h.dataLen) && int64(len(data)) == want &&
		crc32.Checksum(data, castagnoli) == h.blockSum(i)
}

// parseChunkFile checks a whole chunk file, every block included, and
// returns its header and data (aliasing b). Any inconsistency is
// errCorrupt.
func parseChunkFile(b []byte) (fileHeader, []byte, error) {
	h, err := parseHeader(b)
	if err != nil {
		return h, nil, err
	}
	data := b[h.dataOff:]
	if int64(len(data)) != h.dataLen {
		return h, nil, fmt.Errorf("%w: %d bytes of data, header says %d", errCorrupt, len(data), h.dataLen)
	}
	if err := h.verifyData(data); err != nil {
		return h, nil, err
	}
	return h, data, nil
}

// verifyData checks all of a chunk's data against the block table.
func (h *fileHeader) verifyData(data []byte) error {
	for i := int64(0); i < blocks(h.dataLen); i++ {
		off := i << diskBlockShift
		if !h.verifyBlock(i, data[off:min(off+diskBlockSize, int64(len(data)))]) {
			return fmt.Errorf("%w: block %d checksum mismatch", errCorrupt, i)
		}
	}
	return nil
}

// readIdentity parses only the identity of a chunk file's prefix (no
// checksum: used to learn an object's key for PurgePrefix, never to serve).
func readIdentity(b []byte) (bucket, key string, ok bool) {
	if len(b) < fileHeaderLen || string(b[:4]) != fileMagic {
		return "", "", false
	}
	bl := int(binary.LittleEndian.Uint16(b[24:]))
	kl := int(binary.LittleEndian.Uint16(b[26:]))
	if fileHeaderLen+bl+kl > len(b) {
		return "", "", false
	}
	return string(b[fileHeaderLen : fileHeaderLen+bl]), string(b[fileHeaderLen+bl : fileHeaderLen+bl+kl]), true
}

// diskKey names a chunk file: hashes of the object and of the version,
// and the chunk index.
type diskKey struct {
	kh, eh uint64
	idx    int64
}

// fileName is "<kh>-<eh>-<idx>.v2" in lower-case hex, kh and eh 16 digits
// wide, idx without leading zeros; the suffix is the format version.
func (k diskKey) fileName() string {
	b := make([]byte, 0, 16+1+16+1+16+len(fileSuffix))
	b = appendHex16(b, k.kh)
	b = append(b, '-')
	b = appendHex16(b, k.eh)
	b = append(b, '-')
	b = strconv.AppendUint(b, uint64(k.idx), 16)
	b = append(b, fileSuffix...)
	return string(b)
}

// fileSuffix ends the names of chunk files of the current format. Version 1
// files had no suffix.
const fileSuffix = ".v2"

// subdir spreads files over 256 directories by the object hash's top byte,
// so that no directory grows past a few thousand entries.
func (k diskKey) subdir() string {
	const hexDigits = "0123456789abcdef"
	top := k.kh >> 56
	return string([]byte{hexDigits[top>>4], hexDigits[top&15]})
}

func appendHex16(b []byte, v uint64) []byte {
	const hexDigits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, hexDigits[(v>>uint(shift))&15])
	}
	return b
}

// parseFileName is the inverse of fileName; it accepts only the canonical
// form, so every accepted name maps back to itself.
func parseFileName(name string) (diskKey, bool) {
	base, ok := strings.CutSuffix(name, fileSuffix)
	if !ok {
		return diskKey{}, false
	}
	return parseBaseName(base)
}

// isV1FileName reports whether name is that of a version 1 chunk file.
func isV1FileName(name string) bool {
	_, ok := parseBaseName(name)
	return ok
}

// parseBaseName parses "<kh>-<eh>-<idx>", canonical form only.
func parseBaseName(name string) (diskKey, bool) {
	var k diskKey
	if len(name) < 16+1+16+1+1 || len(name) > 16+1+16+1+16 || name[16] != '-' || name[33] != '-' {
		return k, false
	}
	kh, ok1 := parseHex(name[:16])
	eh, ok2 := parseHex(name[17:33])
	idx, ok3 := parseHex(name[34:])
	if !ok1 || !ok2 || !ok3 || (len(name) > 35 && name[34] == '0') || idx > 1<<62 {
		return k, false
	}
	return diskKey{kh: kh, eh: eh, idx: int64(idx)}, true
}

// parseHex parses 1 to 16 lower-case hex digits.
func parseHex(s string) (uint64, bool) {
	if len(s) == 0 || len(s) > 16 {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}
