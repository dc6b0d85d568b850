package fakeclock

import (
	"context"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	c := New()
	if !c.Now().Equal(Start) {
		t.Fatalf("New().Now() = %v, want %v", c.Now(), Start)
	}
	c.Advance(time.Minute)
	c.Advance(-2 * time.Second)
	if got, want := c.Now(), Start.Add(58*time.Second); !got.Equal(want) {
		t.Fatalf("after Advance: %v, want %v", got, want)
	}
	if err := c.Sleep(context.Background(), 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.Sleep(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
	if n, total := c.Sleeps(); n != 2 || total != 4*time.Second {
		t.Fatalf("Sleeps() = %d, %v; want 2, 4s", n, total)
	}
	if c.MaxSleep() != 3*time.Second {
		t.Fatalf("MaxSleep() = %v, want 3s", c.MaxSleep())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	before := c.Now()
	if err := c.Sleep(ctx, time.Hour); err != context.Canceled {
		t.Fatalf("Sleep on an ended ctx = %v, want context.Canceled", err)
	}
	if !c.Now().Equal(before) {
		t.Fatal("Sleep on an ended ctx advanced the clock")
	}
	at := time.Unix(1_900_000_000, 0)
	if !At(at).Now().Equal(at) {
		t.Fatal("At(t).Now() != t")
	}
}
