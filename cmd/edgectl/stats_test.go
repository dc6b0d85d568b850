package main

import (
	"strings"
	"testing"
)

func TestStatsReads(t *testing.T) {
	cases := []struct {
		args     []string
		wantPath string
	}{
		{[]string{"stats"}, "/v1/stats"},
		{[]string{"stats", "-hot", "5"}, "/v1/stats/hot"},
		{[]string{"stats", "-file", "10086"}, "/v1/stats/files/10086"},
		{[]string{"stats", "-file", "a/b c"}, "/v1/stats/files/a%2Fb%20c"},
		{[]string{"stats", "-task", "4b4ab62e447612e50a15e1dfff1b91c8"}, "/v1/tasks/4b4ab62e447612e50a15e1dfff1b91c8"},
	}
	for _, c := range cases {
		api := &fakeAPI{status: 200, answer: `{"ok":true}`}
		addr := api.start(t)
		code, out, errs := runCmd(t, addr, c.args...)
		if code != 0 || api.method != "GET" || api.path != c.wantPath || strings.TrimSpace(out) != `{"ok":true}` {
			t.Errorf("%v: exit %d, %s %s, stdout %q, stderr %s; want GET %s", c.args, code, api.method, api.path, out, errs, c.wantPath)
		}
	}
	for _, bad := range [][]string{{"stats", "-hot", "5", "-file", "x"}, {"stats", "-hot", "-1"}, {"stats", "-hot", "5000"}} {
		api := &fakeAPI{status: 200, answer: `{}`}
		addr := api.start(t)
		if code, _, _ := runCmd(t, addr, bad...); code != 2 || api.path != "" {
			t.Errorf("%v: exit %d, request %q; want exit 2 and no request", bad, code, api.path)
		}
	}
}
