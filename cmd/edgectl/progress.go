package main

import (
	"io"
	"os"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal: only then is a progress bar
// drawn (a log file or a pipe gets one final line instead).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressBar is a transfer's bar on a terminal: bytes, percentage, rate
// and ETA (moving averages, so a stall shows at once). The transfer
// reports its position with set from any goroutine; a ticker feeds the
// bar so the hot copy loop never waits on it.
type progressBar struct {
	p    *mpb.Progress
	bar  *mpb.Bar
	mu   sync.Mutex
	last time.Time
	stop chan struct{}
	done chan struct{}
}

// newProgressBar starts a bar on w named name; poll gives the position.
func newProgressBar(w io.Writer, name string, poll func() int64) *progressBar {
	// WithAutoRefresh: draw even when w is not a terminal (tests).
	p := mpb.New(mpb.WithOutput(w), mpb.WithWidth(32), mpb.WithRefreshRate(200*time.Millisecond), mpb.WithAutoRefresh())
	bar := p.New(0, mpb.BarStyle(),
		mpb.PrependDecorators(decor.Name(name+" ", decor.WCSyncSpaceR), decor.CountersKibiByte("% .1f / % .1f")),
		mpb.AppendDecorators(decor.Percentage(decor.WCSyncSpace),
			decor.EwmaSpeed(decor.SizeB1024(0), "% .1f", 30, decor.WCSyncSpace),
			decor.EwmaETA(decor.ET_STYLE_GO, 30, decor.WCSyncSpace)))
	b := &progressBar{p: p, bar: bar, last: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-t.C:
				b.set(poll())
			}
		}
	}()
	return b
}

func (b *progressBar) setTotal(n int64) { b.bar.SetTotal(n, false) }

func (b *progressBar) set(cur int64) {
	b.mu.Lock()
	now := time.Now()
	dur := now.Sub(b.last)
	b.last = now
	b.mu.Unlock()
	b.bar.EwmaSetCurrent(cur, dur)
}

// finish stops the bar, complete or aborted, and waits for its last draw.
func (b *progressBar) finish(ok bool, cur int64) {
	close(b.stop)
	<-b.done
	if ok {
		b.set(cur)
		b.bar.SetTotal(-1, true)
	} else {
		b.bar.Abort(false)
	}
	b.p.Wait()
}
