package stats

import (
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	c, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.FlushInterval != time.Second || c.AccessTTL != 24*time.Hour || c.HotKey != "hotset" ||
		c.MaxPending != 100_000 || c.ProgressTTL != 24*time.Hour || c.ProgressChannel != "download:events" ||
		c.LogStream != "download:log" || c.LogMaxLen != 1_000_000 || c.LogQueue != 10_000 ||
		c.NodeID == "" || c.ProgressInterval != time.Second || c.MaxTasks != 100_000 || c.Timeout != 2*time.Second {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

func TestConfigInvalid(t *testing.T) {
	tests := []struct {
		cfg   Config
		field string
	}{
		{Config{FlushInterval: -1}, "FlushInterval"},
		{Config{AccessTTL: time.Millisecond}, "AccessTTL"},
		{Config{ProgressTTL: -time.Second}, "ProgressTTL"},
		{Config{MaxPending: -1}, "MaxPending"},
		{Config{LogQueue: -3}, "LogQueue"},
		{Config{LogMaxLen: -1}, "LogMaxLen"},
		{Config{Timeout: -time.Second}, "Timeout"},
		{Config{MaxTasks: -1}, "MaxTasks"},
	}
	for _, tt := range tests {
		_, err := Config{}.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tt.cfg.withDefaults(); err == nil || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%+v: error %v does not name %s", tt.cfg, err, tt.field)
		}
	}
	if _, err := New(Config{}, nil, nil); err == nil {
		t.Error("New with a nil client must fail")
	}
}

func TestTaskID(t *testing.T) {
	// Vectors computed independently:
	// python3 -c "import hashlib;print(hashlib.sha256(b'task\x00tok-123\x00file-9').hexdigest()[:32])"
	for _, c := range []struct{ token, file, want string }{
		{"tok-123", "file-9", "09c4f20c823b6fa649b9274cfeef4b74"},
		{"", "", "5a49947d34dba99e572c5e1e6296ad13"},
	} {
		if got := TaskID(c.token, c.file); got != c.want {
			t.Errorf("TaskID(%q, %q) = %s, want %s", c.token, c.file, got, c.want)
		}
	}
	// The separator keeps (token, file) pairs apart.
	if TaskID("ab", "c") == TaskID("a", "bc") {
		t.Error("TaskID must separate token and file id")
	}
	long := strings.Repeat("x", 1000)
	if len(TaskID(long, long)) != 32 {
		t.Error("long inputs must hash like short ones")
	}
}
