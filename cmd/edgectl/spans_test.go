package main

import (
	"slices"
	"testing"
)

func TestPieces(t *testing.T) {
	got := pieces([]span{{Start: 0, End: 10}, {Start: 20, End: 23}}, 4)
	want := []span{{Start: 0, End: 4}, {Start: 4, End: 8}, {Start: 8, End: 10}, {Start: 20, End: 23}}
	if !slices.Equal(got, want) {
		t.Fatalf("pieces = %v, want %v", got, want)
	}
}
