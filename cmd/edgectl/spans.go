package main

import "github.com/edgeproxy/edgeproxy/internal/byteranges"

// span is the half-open byte range [Start, End) of a file.
type span = byteranges.Span

// pieces splits the gaps into pieces of at most n bytes, in file order: the
// unit of work a connection takes from the queue.
func pieces(gaps []span, n int64) []span {
	var out []span
	for _, g := range gaps {
		for at := g.Start; at < g.End; at += n {
			out = append(out, span{Start: at, End: min(at+n, g.End)})
		}
	}
	return out
}
