package main

import (
	"bytes"
	"strings"
	"testing"
)

// Explicit help is not a mistake: usage on stdout, nothing on stderr, exit 0.
func TestHelp(t *testing.T) {
	cmds := [][]string{
		{"token", "create"}, {"token", "revoke"}, {"file", "put"}, {"file", "get"},
		{"sign"}, {"purge"}, {"stats"},
	}
	for _, c := range cmds {
		name := strings.Join(c, " ")
		for _, h := range []string{"-h", "-help", "--help"} {
			// The API address is never contacted for help.
			code, out, errs := runCmd(t, "http://127.0.0.1:1", append(append([]string{}, c...), h)...)
			if code != 0 || errs != "" || !strings.HasPrefix(out, "usage: edgectl "+name+" ") {
				t.Errorf("edgectl %s %s: exit %d, stdout %q, stderr %q", name, h, code, out, errs)
			}
		}
		code, out, _ := runCmd(t, "http://127.0.0.1:1", append([]string{"help"}, c...)...)
		if code != 0 || !strings.HasPrefix(out, "usage: edgectl "+name+" ") {
			t.Errorf("edgectl help %s: exit %d, stdout %q", name, code, out)
		}
	}
	// Flags of the command are described.
	if _, out, _ := runCmd(t, "", "file", "put", "--help"); !strings.Contains(out, "-src") || !strings.Contains(out, "EDGECTL_S3_ENDPOINT") {
		t.Errorf("file put --help lacks -src or the S3 variables:\n%s", out)
	}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}, {"token", "-h"}, {"file", "--help"}} {
		code, out, errs := runCmd(t, "", args...)
		if code != 0 || errs != "" || !strings.HasPrefix(out, "usage: edgectl [-addr URL]") {
			t.Errorf("edgectl %v: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
}

// A usage error shows the failing command's usage on stderr, exit 2.
func TestUsageErrorShowsCommandUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"token", "create", "-bogus"}, "usage: edgectl token create "},
		{[]string{"file", "put", "-id", "1"}, "usage: edgectl file put "},
		{[]string{"sign", "-url", "https://x/y"}, "usage: edgectl sign "},
		{[]string{"token", "revoke", "a", "b"}, "usage: edgectl token revoke "},
		{[]string{"bogus"}, "usage: edgectl [-addr URL]"},
	} {
		code, out, errs := runCmd(t, "http://127.0.0.1:1", tc.args...)
		if code != 2 || out != "" || !strings.HasPrefix(errs, "edgectl: ") || !strings.Contains(errs, tc.want) {
			t.Errorf("edgectl %v: exit %d, stdout %q, stderr %q; want 2 and %q", tc.args, code, out, errs, tc.want)
		}
	}
}

// A token may begin with '-' (base64url): revoke takes it as the token,
// not as a flag, with or without "--".
func TestRevokeDashToken(t *testing.T) {
	api := &fakeAPI{status: 204}
	addr := api.start(t)
	for _, args := range [][]string{{"-abc_DEF"}, {"--", "-abc_DEF"}} {
		code, _, errs := runCmd(t, addr, append([]string{"token", "revoke"}, args...)...)
		if code != 0 || api.method != "DELETE" || api.path != "/v1/tokens/-abc_DEF" {
			t.Errorf("revoke %v: exit %d (%s), request %s %s", args, code, errs, api.method, api.path)
		}
	}
}

func TestGlobalFlags(t *testing.T) {
	api := &fakeAPI{status: 200, answer: `{}`}
	addr := api.start(t)
	var out, errb bytes.Buffer
	if code := run([]string{"-addr", addr, "-timeout", "0s", "stats"}, nil, &out, &errb); code != 2 {
		t.Errorf("-timeout 0s: exit %d, want 2", code)
	}
	// -addr wins over $EDGECTL_ADDR.
	if code := run([]string{"-addr", addr, "stats"}, []string{"EDGECTL_ADDR=http://127.0.0.1:1", "EDGECTL_ADMIN_KEY=k"}, &out, &errb); code != 0 || api.path != "/v1/stats" {
		t.Errorf("-addr: exit %d (%s)", code, errb.String())
	}
}
