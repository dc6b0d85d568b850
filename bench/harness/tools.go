package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// tool is a Debian package the harness runs, by binary name.
type tool struct{ bin, pkg string }

// tools are the packages every run needs.
var tools = []tool{
	{"wrk", "wrk"},
	{"nginx", "nginx"},
	{"varnishd", "varnish"},
}

// redisTool is needed only by the access-layers section.
var redisTool = tool{"redis-server", "redis-server"}

// toolPath finds bin on PATH or in /usr/sbin (often not on a user's PATH).
func toolPath(bin string) (string, error) {
	if p, err := exec.LookPath(bin); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/usr/bin"} {
		p := filepath.Join(d, bin)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("harness: %s not found", bin)
}

// ensureTools installs the given tools from Debian's packages when
// missing (as root; through sudo otherwise).
func ensureTools(ctx context.Context, tools []tool) error {
	var missing []string
	for _, t := range tools {
		if _, err := toolPath(t.bin); err != nil {
			missing = append(missing, t.pkg)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	logf("installing %v (Debian packages)", missing)
	var pre []string
	if os.Geteuid() != 0 {
		pre = []string{"sudo", "-n"}
	}
	env := []string{"DEBIAN_FRONTEND=noninteractive"}
	update := append(append([]string{}, pre...), "apt-get", "update", "-qq")
	if _, err := runCmd(ctx, 5*time.Minute, "/", env, update[0], update[1:]...); err != nil {
		return err
	}
	install := append(append([]string{}, pre...), "apt-get", "install", "-y", "-qq", "--no-install-recommends")
	install = append(install, missing...)
	if _, err := runCmd(ctx, 10*time.Minute, "/", env, install[0], install[1:]...); err != nil {
		return err
	}
	for _, t := range tools {
		if _, err := toolPath(t.bin); err != nil {
			return err
		}
	}
	return nil
}
