package cache

import (
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// objectID names one version of one object: everything a chunk's identity
// needs except its index. It is immutable once built and shared by the
// metadata entry, the readers, the fills and the chunks of that version, so
// a hit compares pointers before it compares strings.
type objectID struct {
	bucket, key, etag string
	size              int64
	kh                uint64 // keyHash(bucket, key): names the object on disk
	eh                uint64 // etagHash(etag): names the version on disk
}

// newObjectID copies the strings so the result owns them: callers such as a
// fasthttp handler may pass strings backed by memory they reuse.
func newObjectID(bucket, key, etag string, size int64) *objectID {
	bucket, key, etag = cloneString(bucket), cloneString(key), cloneString(etag)
	return &objectID{
		bucket: bucket,
		key:    key,
		etag:   etag,
		size:   size,
		kh:     keyHash(bucket, key),
		eh:     xxhash.Sum64String(etag),
	}
}

func cloneString(s string) string {
	if s == "" {
		return ""
	}
	return string([]byte(s))
}

// same reports whether a and b name the same version.
func (a *objectID) same(b *objectID) bool {
	return a == b || (a.etag == b.etag && a.key == b.key && a.bucket == b.bucket && a.size == b.size)
}

// chunk is one immutable piece of a version: bytes
// [idx*ChunkSize, idx*ChunkSize+len(data)) of the object id names. Its data
// is never written after the chunk is published, which is what lets readers
// hand it to the socket without copying.
type chunk struct {
	id   *objectID
	idx  int64
	data []byte
	// pins is the chunk's pin state (pin.go): the readers serving from it
	// and whether the memory tier has let go of it.
	pins atomic.Int64
}

// keyHash names an object (all its versions) with 64 bits. The formula is
// part of the on-disk format: changing it orphans every chunk file.
func keyHash(bucket, key string) uint64 {
	return fmix64(xxhash.Sum64String(bucket)*0x9e3779b97f4a7c15) ^ xxhash.Sum64String(key)
}

// memKey is the ristretto key of a chunk. Ristretto keeps only this hash, so
// two identities can collide; every lookup therefore compares the stored
// chunk's full identity and treats a mismatch as a miss.
func memKey(id *objectID, idx int64) uint64 {
	return fmix64(id.kh ^ fmix64(id.eh+uint64(idx)*0x9e3779b97f4a7c15))
}

// fmix64 is MurmurHash3's 64-bit finaliser: a cheap bijection that spreads
// every input bit over the output.
func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// span is the chunk arithmetic of one cache: which chunks hold which bytes.
type span struct{ size int64 }

// index returns the chunk holding byte off.
func (s span) index(off int64) int64 { return off / s.size }

// count returns how many chunks an object of objSize bytes has.
func (s span) count(objSize int64) int64 { return (objSize + s.size - 1) / s.size }

// length returns the length of chunk idx of an object of objSize bytes:
// ChunkSize except for the last chunk.
func (s span) length(objSize, idx int64) int64 {
	return min(s.size, objSize-idx*s.size)
}
