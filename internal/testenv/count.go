package testenv

import (
	"context"
	"net"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// CommandCounter counts the commands a go-redis client sends, by lowercase
// name, pipelined ones included. Unlike the server's INFO commandstats it
// sees only its own client, so tests sharing one redis-server can count
// exactly. Attach it with Count.
type CommandCounter struct {
	mu sync.Mutex
	n  map[string]int
}

// Count attaches a new CommandCounter to c.
func Count(c redis.UniversalClient) *CommandCounter {
	cc := &CommandCounter{n: make(map[string]int)}
	c.AddHook(cc)
	return cc
}

// N returns how many name commands ("hgetall") were sent so far.
func (cc *CommandCounter) N(name string) int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.n[strings.ToLower(name)]
}

func (cc *CommandCounter) add(cmds ...redis.Cmder) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	for _, c := range cmds {
		cc.n[strings.ToLower(c.Name())]++
	}
}

// DialHook implements redis.Hook.
func (cc *CommandCounter) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

// ProcessHook implements redis.Hook.
func (cc *CommandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		cc.add(cmd)
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook implements redis.Hook.
func (cc *CommandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		cc.add(cmds...)
		return next(ctx, cmds)
	}
}
