package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMasterName is the name the Sentinels of NewSentinel monitor.
const SentinelMasterName = "edgeproxy"

// Sentinel quorum timings: small, so that a test sees a failover within a
// few seconds (a master is declared down after downAfter of silence; a
// failover that stalls is retried after failoverTimeout).
const (
	sentinelDownAfter       = 1000 * time.Millisecond
	sentinelFailoverTimeout = 3000 * time.Millisecond
)

// SentinelSet is a Redis master, one replica and three Sentinels on
// loopback ports, all redis-server processes (redis-server --sentinel is
// what Debian's redis-sentinel runs). It belongs to one test.
type SentinelSet struct {
	// Addrs are the Sentinels' "127.0.0.1:port" addresses, what
	// redis.addrs holds in production.
	Addrs []string
	// MasterName is the monitored master's name (SentinelMasterName).
	MasterName string
	// Password, when set (NewSentinelAuth), is the Sentinels' requirepass:
	// clients authenticate to them as the default user with it. The Redis
	// nodes themselves need none.
	Password string

	nodes     []*RedisServer // nodes[0] starts as master, nodes[1] as its replica
	sentinels []*Process
}

// NewSentinel starts the set and waits until every Sentinel names the same
// master and knows the replica and the other two Sentinels. Everything is
// stopped when the test ends.
func NewSentinel(t testing.TB) *SentinelSet {
	t.Helper()
	return newSentinel(t, "")
}

// NewSentinelAuth is NewSentinel with Sentinels that require password
// (requirepass; they also authenticate to each other with it).
func NewSentinelAuth(t testing.TB, password string) *SentinelSet {
	t.Helper()
	return newSentinel(t, password)
}

func newSentinel(t testing.TB, password string) *SentinelSet {
	t.Helper()
	bin, err := RedisBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &SentinelSet{MasterName: SentinelMasterName, Password: password}
	master, err := StartRedis(context.Background(), mkdir(t, dir, "master"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(master.Close)
	replica, err := StartRedis(context.Background(), mkdir(t, dir, "replica"), "--replicaof", "127.0.0.1", portOf(master.Addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(replica.Close)
	s.nodes = []*RedisServer{master, replica}

	for i := range 3 {
		sdir := mkdir(t, dir, "sentinel"+itoa(i))
		p, addr, err := startSentinel(bin, sdir, master.Addr, password)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Stop)
		s.sentinels = append(s.sentinels, p)
		s.Addrs = append(s.Addrs, addr)
	}
	if err := s.waitAgreed(master.Addr, startTimeout); err != nil {
		t.Fatal(err)
	}
	return s
}

func mkdir(t testing.TB, parent, name string) string {
	t.Helper()
	d := filepath.Join(parent, name)
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func portOf(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

// startSentinel starts one Sentinel on a free port. Sentinel rewrites its
// configuration file, so each gets its own in its directory.
func startSentinel(bin, dir, masterAddr, password string) (*Process, string, error) {
	var last error
	for range 3 { // a freed port can be taken again before we bind it
		port, err := FreePort()
		if err != nil {
			return nil, "", err
		}
		addr := "127.0.0.1:" + itoa(port)
		conf := fmt.Sprintf(`port %d
bind 127.0.0.1
protected-mode no
daemonize no
dir %s
sentinel monitor %s 127.0.0.1 %s 2
sentinel down-after-milliseconds %[3]s %[5]d
sentinel failover-timeout %[3]s %[6]d
sentinel parallel-syncs %[3]s 1
`, port, dir, SentinelMasterName, portOf(masterAddr), sentinelDownAfter.Milliseconds(), sentinelFailoverTimeout.Milliseconds())
		probe, pong := "PING\r\n", "+PONG"
		if password != "" {
			conf += "requirepass " + password + "\n"
			probe, pong = "AUTH "+password+"\r\n", "+OK"
		}
		path := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			return nil, "", fmt.Errorf("testenv: sentinel config: %w", err)
		}
		p := &Process{Name: "redis-sentinel", Bin: bin, Args: []string{path, "--sentinel"},
			LogPath: filepath.Join(dir, "sentinel.log")}
		if last = p.Start(); last != nil {
			return nil, "", last
		}
		last = p.WaitReady(context.Background(), startTimeout, func() bool {
			line, err := tcpRoundTrip(addr, []byte(probe))
			return err == nil && line == pong
		})
		if last == nil {
			return p, addr, nil
		}
		p.Stop()
	}
	return nil, "", last
}

// waitAgreed waits until every Sentinel names master as the master and
// sees one replica and two other Sentinels, so that a failover can be
// authorised (quorum 2) and has a replica to promote.
func (s *SentinelSet) waitAgreed(master string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last string
	for ctx.Err() == nil {
		ok := true
		for _, addr := range s.Addrs {
			c := redis.NewSentinelClient(&redis.Options{Addr: addr, Password: s.Password, DialTimeout: time.Second})
			m, err := c.Master(ctx, s.MasterName).Result()
			c.Close()
			got := m["ip"] + ":" + m["port"]
			if err != nil || got != master || m["num-slaves"] != "1" || m["num-other-sentinels"] != "2" ||
				strings.Contains(m["flags"], "down") {
				last = fmt.Sprintf("sentinel %s: master %s, %v, err %v", addr, got, m, err)
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("testenv: sentinels did not agree on master %s within %s: %s", master, timeout, last)
}

// Master returns the address every Sentinel currently names as master, or
// "" while they disagree or one cannot be asked.
func (s *SentinelSet) Master(ctx context.Context) string {
	var agreed string
	for _, addr := range s.Addrs {
		c := redis.NewSentinelClient(&redis.Options{Addr: addr, Password: s.Password, DialTimeout: time.Second})
		r, err := c.GetMasterAddrByName(ctx, s.MasterName).Result()
		c.Close()
		if err != nil || len(r) != 2 {
			return ""
		}
		got := r[0] + ":" + r[1]
		if agreed != "" && got != agreed {
			return ""
		}
		agreed = got
	}
	return agreed
}

// MasterAddr is the address of the node that started as master.
func (s *SentinelSet) MasterAddr() string { return s.nodes[0].Addr }

// ReplicaAddr is the address of the node that started as replica.
func (s *SentinelSet) ReplicaAddr() string { return s.nodes[1].Addr }

// WaitReplicated waits until the replica has acknowledged every write the
// master accepted so far (WAIT 1), so that a failover loses none of them.
func (s *SentinelSet) WaitReplicated(t testing.TB) {
	t.Helper()
	// WAIT blocks up to its 10 s timeout: the read must wait longer.
	c := NewRedisClient(s.MasterAddr(), func(o *redis.Options) { o.ReadTimeout = 15 * time.Second })
	defer c.Close()
	n, err := c.Do(context.Background(), "WAIT", 1, 10000).Int()
	if err != nil || n != 1 {
		t.Fatalf("testenv: WAIT for the replica: %d replicas, %v", n, err)
	}
}

// KillMaster ends the original master with SIGKILL: no shutdown, no
// goodbye to clients or Sentinels, as when its machine dies. Its port then
// refuses connections.
func (s *SentinelSet) KillMaster(t testing.TB) {
	t.Helper()
	p := s.nodes[0].Proc
	if p.Exited() {
		t.Fatal("testenv: master already stopped")
	}
	p.Kill()
}

// WaitFailover waits until every Sentinel names the former replica as
// master and returns how long that took.
func (s *SentinelSet) WaitFailover(t testing.TB, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for ctx.Err() == nil {
		if s.Master(ctx) == s.ReplicaAddr() {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("testenv: no failover to %s within %s\n%s", s.ReplicaAddr(), timeout, s.diagnose())
	return 0
}

// diagnose describes what each Sentinel believes about the master and its
// replicas, and the end of its log: a failover that never happens is
// explained there (no replica good enough, an election that keeps
// failing, a Sentinel that cannot be reached).
func (s *SentinelSet) diagnose() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var b strings.Builder
	for i, addr := range s.Addrs {
		c := redis.NewSentinelClient(&redis.Options{Addr: addr, Password: s.Password, DialTimeout: time.Second})
		m, err := c.Master(ctx, s.MasterName).Result()
		fmt.Fprintf(&b, "sentinel %s: master %v err %v\n", addr, m, err)
		r, err := c.Replicas(ctx, s.MasterName).Result()
		fmt.Fprintf(&b, "sentinel %s: replicas %v err %v\n", addr, r, err)
		c.Close()
		fmt.Fprintf(&b, "sentinel %s log:\n%s\n", addr, s.sentinels[i].LogTail())
	}
	return b.String()
}
