package upload

import (
	"bytes"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// spoolRun drives a spool the way writeLocked does and checks every part
// it cuts against the CRC32C of the bytes read back from the file: the
// first tail bytes of data arrive as a cached tail (adopted with their
// checksum) or, with fetched, through Write as from the staging object;
// the rest in chunks of the sizes given (cycled); whole parts are cut
// after each chunk when eager (a plain PATCH) or only at the end (a
// checksummed one, whose spool holds up to two parts); the rest is the
// last part. It returns the parts' lengths.
func spoolRun(t testing.TB, data []byte, partSize, tail int, fetched, eager bool, chunks []int) []int64 {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "spool")
	if err != nil {
		t.Fatal(err)
	}
	sp := &spool{f: f, partSize: int64(partSize)}
	defer sp.close()
	if tail > 0 {
		if fetched {
			if _, err := io.Copy(sp, bytes.NewReader(data[:tail])); err != nil {
				t.Fatal(err)
			}
		} else {
			g, err := os.CreateTemp(t.TempDir(), "tail")
			if err != nil {
				t.Fatal(err)
			}
			g.Write(data[:tail])
			sp.adopt(g, int64(tail), crc32.Checksum(data[:tail], castagnoli))
		}
	}
	var cuts []int64
	sent := 0 // data[:sent] is in "S3"
	cut := func(n int64) {
		t.Helper()
		crc, err := sp.partCRC(n)
		if err != nil {
			t.Fatalf("cut %d after %v: %v", n, cuts, err)
		}
		got := make([]byte, n)
		if _, err := sp.section(n).ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data[sent:sent+int(n)]) {
			t.Fatalf("part %d: the section is not the bytes written", len(cuts)+1)
		}
		if want := crc32.Checksum(got, castagnoli); crc != want {
			t.Fatalf("part %d (%d bytes at %d): crc %08x, want %08x", len(cuts)+1, n, sent, crc, want)
		}
		if err := sp.consumed(n); err != nil {
			t.Fatal(err)
		}
		sent += int(n)
		cuts = append(cuts, n)
	}
	for i, off := 0, tail; off < len(data); i++ {
		n := min(max(chunks[i%len(chunks)], 1), len(data)-off)
		if eager { // a plain PATCH reads no further than the part boundary
			n = min(n, partSize-int(sp.pending()))
		}
		if err := sp.write(data[off : off+n]); err != nil {
			t.Fatal(err)
		}
		off += n
		for eager && sp.pending() >= int64(partSize) {
			cut(int64(partSize))
		}
	}
	for sp.pending() >= int64(partSize) {
		cut(int64(partSize))
	}
	if n := sp.pending(); n > 0 {
		cut(n)
	}
	if sent != len(data) || sp.size != 0 || len(sp.crcs) != 0 || sp.run != 0 {
		t.Fatalf("after the last part: sent %d of %d, spool size %d, %d runs, run %d", sent, len(data), sp.size, len(sp.crcs), sp.run)
	}
	return cuts
}

// TestSpoolPartCRC: each part's checksum, computed as the bytes are
// written, is the CRC32C of exactly that part's bytes, for plain and
// checksummed PATCHes (parts cut while streaming, or up to two cut from
// one spool at the end), with a tail adopted from the cache or fetched,
// and writes that straddle part boundaries.
func TestSpoolPartCRC(t *testing.T) {
	data := make([]byte, 100)
	for i := range data {
		data[i] = byte(i*7 + 3)
	}
	for _, tc := range []struct {
		name           string
		n, part, tail  int
		fetched, eager bool
		chunks         []int
		want           []int64
	}{
		{"plain, no tail", 23, 7, 0, false, true, []int{3}, []int64{7, 7, 7, 2}},
		{"plain, cached tail", 23, 7, 5, false, true, []int{4}, []int64{7, 7, 7, 2}},
		{"plain, fetched tail", 23, 7, 5, true, true, []int{100}, []int64{7, 7, 7, 2}},
		{"checksummed, two parts from one spool", 17, 7, 5, false, false, []int{12}, []int64{7, 7, 3}},
		{"checksummed, writes straddle runs", 17, 7, 6, true, false, []int{2, 5, 1}, []int64{7, 7, 3}},
		{"checksummed, exact parts", 14, 7, 3, false, false, []int{11}, []int64{7, 7}},
		{"one byte parts", 5, 1, 0, false, false, []int{3}, []int64{1, 1, 1, 1, 1}},
		{"shorter than a part", 4, 7, 2, false, false, []int{1}, []int64{4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := spoolRun(t, data[:tc.n], tc.part, tc.tail, tc.fetched, tc.eager, tc.chunks)
			if len(got) != len(tc.want) {
				t.Fatalf("parts %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("parts %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// TestSpoolRefusesOtherCuts: a part that is not the next run (or all
// pending bytes when less than a run is left) has no checksum: partCRC
// and consumed refuse it instead of sending a wrong one.
func TestSpoolRefusesOtherCuts(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "spool"))
	if err != nil {
		t.Fatal(err)
	}
	sp := &spool{f: f, partSize: 7}
	defer sp.close()
	sp.write(make([]byte, 10))
	for _, n := range []int64{3, 10, 6} {
		if _, err := sp.partCRC(n); err == nil || !strings.Contains(err.Error(), "upload: bug: ") {
			t.Errorf("partCRC(%d) of 10 pending, part size 7: %v, want a bug error", n, err)
		}
		if err := sp.consumed(n); err == nil {
			t.Errorf("consumed(%d) accepted", n)
		}
	}
	if sp.pending() != 10 {
		t.Fatalf("refused cuts moved the spool: %d pending", sp.pending())
	}
	if _, err := sp.partCRC(7); err != nil {
		t.Fatal(err)
	}
}

// FuzzSpoolPartCRC: any data, part size, tail and chunking give parts
// whose checksums match their bytes (spoolRun checks each one).
func FuzzSpoolPartCRC(f *testing.F) {
	f.Add([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), uint8(7), uint8(5), uint64(1), false, true)
	f.Add([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), uint8(7), uint8(6), uint64(2), true, false)
	f.Fuzz(func(t *testing.T, data []byte, part, tail uint8, seed uint64, fetched, eager bool) {
		if part == 0 {
			return
		}
		tl := min(int(tail)%int(part), len(data))
		r := rand.New(rand.NewPCG(seed, seed))
		chunks := make([]int, 8)
		for i := range chunks {
			chunks[i] = 1 + r.IntN(3*int(part))
		}
		spoolRun(t, data, int(part), tl, fetched, eager, chunks)
	})
}
