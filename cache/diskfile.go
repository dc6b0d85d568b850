package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
)

// On-disk chunk file format, version 1. All integers little-endian.
//
//	0   magic "EPC1"
//	4   crc32c (Castagnoli) of every byte from offset 8 to the end
//	8   chunk index (uint64)
//	16  data length (uint64)
//	24  bucket length, key length, ETag length, zero (uint16 each)
//	32  bucket, key, ETag, data
//
// The checksum covers the identity as well as the data, so a file is served
// only if every byte is as written; the lengths make truncation and
// trailing garbage detectable before the checksum is even computed. The
// identity inside the file turns a hash collision in the file name into a
// miss instead of wrong bytes.
const (
	fileMagic     = "EPC1"
	fileHeaderLen = 32
	maxIdentLen   = 1<<16 - 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt marks a chunk file that must not be served.
var errCorrupt = errors.New("corrupt chunk file")

// fileHeader is a parsed chunk file header; the identity fields alias the
// file's buffer.
type fileHeader struct {
	idx               int64
	bucket, key, etag []byte
}

// encodeHeader returns the header of the chunk file for ch, checksum
// included, or an error if the identity does not fit the format.
func encodeHeader(ch *chunk) ([]byte, error) {
	id := ch.id
	if len(id.bucket) > maxIdentLen || len(id.key) > maxIdentLen || len(id.etag) > maxIdentLen {
		return nil, fmt.Errorf("identity of %d+%d+%d bytes does not fit a chunk file", len(id.bucket), len(id.key), len(id.etag))
	}
	h := make([]byte, fileHeaderLen, fileHeaderLen+len(id.bucket)+len(id.key)+len(id.etag))
	copy(h, fileMagic)
	binary.LittleEndian.PutUint64(h[8:], uint64(ch.idx))
	binary.LittleEndian.PutUint64(h[16:], uint64(len(ch.data)))
	binary.LittleEndian.PutUint16(h[24:], uint16(len(id.bucket)))
	binary.LittleEndian.PutUint16(h[26:], uint16(len(id.key)))
	binary.LittleEndian.PutUint16(h[28:], uint16(len(id.etag)))
	h = append(h, id.bucket...)
	h = append(h, id.key...)
	h = append(h, id.etag...)
	sum := crc32.Update(0, castagnoli, h[8:])
	sum = crc32.Update(sum, castagnoli, ch.data)
	binary.LittleEndian.PutUint32(h[4:], sum)
	return h, nil
}

// parseChunkFile checks a whole chunk file and returns its header and data
// (aliasing b). Any inconsistency is errCorrupt.
func parseChunkFile(b []byte) (fileHeader, []byte, error) {
	var h fileHeader
	if len(b) < fileHeaderLen || string(b[:4]) != fileMagic {
		return h, nil, fmt.Errorf("%w: bad magic or short header", errCorrupt)
	}
	idx := binary.LittleEndian.Uint64(b[8:])
	dataLen := binary.LittleEndian.Uint64(b[16:])
	bl := int(binary.LittleEndian.Uint16(b[24:]))
	kl := int(binary.LittleEndian.Uint16(b[26:]))
	el := int(binary.LittleEndian.Uint16(b[28:]))
	if binary.LittleEndian.Uint16(b[30:]) != 0 || idx > 1<<62 {
		return h, nil, fmt.Errorf("%w: bad header fields", errCorrupt)
	}
	identEnd := fileHeaderLen + bl + kl + el
	if identEnd > len(b) || dataLen != uint64(len(b)-identEnd) {
		return h, nil, fmt.Errorf("%w: length %d does not match header", errCorrupt, len(b))
	}
	if crc32.Checksum(b[8:], castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return h, nil, fmt.Errorf("%w: checksum mismatch", errCorrupt)
	}
	h.idx = int64(idx)
	h.bucket = b[fileHeaderLen : fileHeaderLen+bl]
	h.key = b[fileHeaderLen+bl : fileHeaderLen+bl+kl]
	h.etag = b[fileHeaderLen+bl+kl : identEnd]
	return h, b[identEnd:], nil
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

// fileName is "<kh>-<eh>-<idx>" in lower-case hex, kh and eh 16 digits
// wide, idx without leading zeros.
func (k diskKey) fileName() string {
	b := make([]byte, 0, 16+1+16+1+16)
	b = appendHex16(b, k.kh)
	b = append(b, '-')
	b = appendHex16(b, k.eh)
	b = append(b, '-')
	b = strconv.AppendUint(b, uint64(k.idx), 16)
	return string(b)
}

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
