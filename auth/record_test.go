package auth

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseRecord(t *testing.T) {
	bad := []struct{ name, in string }{
		{"empty", ""},
		{"no file_id", "user_id=9527"},
		{"empty file_id", "file_id=&user_id=1"},
		{"bad escape", "file_id=%zz"},
		{"semicolon", "file_id=1;user_id=2"},
		{"bad ip", "file_id=1&allowed_ip=300.1.1.1"},
		{"bad cidr", "file_id=1&allowed_ip=10.0.0.0/33"},
		{"only commas", "file_id=1&allowed_ip=,,"},
		{"zoned ip", "file_id=1&allowed_ip=fe80::1%25eth0"},
		{"negative max_uses", "file_id=1&max_uses=-1"},
		{"text max_uses", "file_id=1&max_uses=two"},
		{"negative rate", "file_id=1&rate=-5"},
		{"huge rate", "file_id=1&rate=99999999999999999999"},
		{"zero expires_at", "file_id=1&expires_at=0"},
		{"far expires_at", "file_id=1&expires_at=999999999999"},
		{"text expires_at", "file_id=1&expires_at=soon"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseRecord(tc.in)
			if !errors.Is(err, ErrMalformedRecord) {
				t.Fatalf("ParseRecord(%q) = %+v, %v; want ErrMalformedRecord", tc.in, r, err)
			}
		})
	}

	good := []struct {
		name, in string
		want     Record
	}{
		{"backend form", "file_id=10086&user_id=9527", Record{FileID: "10086", UserID: "9527"}},
		{"escaped", "file_id=a%2Fb&user_id=x+y", Record{FileID: "a/b", UserID: "x y"}},
		{"unknown ignored", "file_id=1&colour=blue&uses=3&session_x=5", Record{FileID: "1"}},
		{"first wins", "file_id=1&file_id=2", Record{FileID: "1"}},
		{"all fields", "file_id=1&user_id=u&allowed_ip=10.0.0.1,%20192.168.0.0/16,2001:db8::/32,::ffff:1.2.3.4&max_uses=3&rate=1048576&expires_at=1700000000",
			Record{FileID: "1", UserID: "u", AllowedIP: []netip.Prefix{
				netip.MustParsePrefix("10.0.0.1/32"), netip.MustParsePrefix("192.168.0.0/16"),
				netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("1.2.3.4/32"),
			}, MaxUses: 3, Rate: 1 << 20, ExpiresAt: time.Unix(1700000000, 0)}},
		{"cidr masked", "file_id=1&allowed_ip=10.1.2.3/8", Record{FileID: "1", AllowedIP: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}},
		{"mapped cidr", "file_id=1&allowed_ip=::ffff:10.0.0.0/104", Record{FileID: "1", AllowedIP: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}},
		{"empty optional", "file_id=1&max_uses=&rate=&expires_at=&allowed_ip=", Record{FileID: "1"}},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRecord(tc.in)
			if err != nil {
				t.Fatalf("ParseRecord(%q): %v", tc.in, err)
			}
			if !recordEqual(got, tc.want) {
				t.Fatalf("ParseRecord(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseRecordFieldsRoundTrip(t *testing.T) {
	r := Record{FileID: "f", UserID: "u", MaxUses: 2, Rate: 7, ExpiresAt: time.Unix(1800000000, 0),
		AllowedIP: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::1/128")}}
	m := map[string]string{"uses": "1", "session_abc": "123"}
	for k, v := range r.fields() {
		m[k] = v.(string)
	}
	got, err := ParseRecordFields(m)
	if err != nil {
		t.Fatal(err)
	}
	if !recordEqual(got, r) {
		t.Fatalf("round trip = %+v, want %+v", got, r)
	}
	if _, err := ParseRecordFields(map[string]string{"user_id": "u"}); !errors.Is(err, ErrMalformedRecord) {
		t.Fatalf("missing file_id: %v", err)
	}
}

func TestRecordAllows(t *testing.T) {
	r, err := ParseRecord("file_id=1&allowed_ip=203.0.113.7,10.0.0.0/8,2001:db8:1::/48")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"203.0.113.7", true}, {"203.0.113.8", false}, {"::ffff:203.0.113.7", true},
		{"10.200.1.1", true}, {"11.0.0.1", false},
		{"2001:db8:1:ffff::1", true}, {"2001:db8:2::1", false}, {"fe80::1%eth0", false},
	} {
		if got := r.allows(netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("allows(%s) = %v, want %v", tc.ip, got, tc.want)
		}
	}
	if r.allows(netip.Addr{}) {
		t.Error("unknown client address allowed by a restricted record")
	}
	open := Record{FileID: "1"}
	if !open.allows(netip.Addr{}) {
		t.Error("unrestricted record refused an unknown address")
	}
}

func recordEqual(a, b Record) bool {
	if a.FileID != b.FileID || a.UserID != b.UserID || a.MaxUses != b.MaxUses || a.Rate != b.Rate ||
		!a.ExpiresAt.Equal(b.ExpiresAt) || len(a.AllowedIP) != len(b.AllowedIP) {
		return false
	}
	for i := range a.AllowedIP {
		if a.AllowedIP[i] != b.AllowedIP[i] {
			return false
		}
	}
	return true
}

func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{
		"file_id=10086&user_id=9527", "", "file_id=%zz", "file_id=1&allowed_ip=10.0.0.0/8,::1",
		"file_id=1&max_uses=3&rate=10&expires_at=1700000000", "file_id=1;x", "file_id=1&allowed_ip=,",
		"file_id=1&expires_at=-1", "=&&=&file_id==",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRecord(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedRecord) {
				t.Fatalf("error does not wrap ErrMalformedRecord: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "auth: malformed token record: ") {
				t.Fatalf("unclear error %q", err)
			}
			return
		}
		if r.FileID == "" || r.MaxUses < 0 || r.Rate < 0 {
			t.Fatalf("accepted invalid record %+v from %q", r, s)
		}
		for _, p := range r.AllowedIP {
			if !p.IsValid() || p != p.Masked() {
				t.Fatalf("bad prefix %v from %q", p, s)
			}
		}
		// The hash form of an accepted record parses back to the same record.
		m := map[string]string{}
		for k, v := range r.fields() {
			m[k] = v.(string)
		}
		back, err := ParseRecordFields(m)
		if err != nil || !recordEqual(back, r) {
			t.Fatalf("re-parse of %+v = %+v, %v", r, back, err)
		}
	})
}

// TestObjectFileIDDisjoint: the host-route form never equals an id of the
// /download/ namespace, which never begins with '/', whatever slashes the
// id contains.
func TestObjectFileIDDisjoint(t *testing.T) {
	if got := ObjectFileID("premium", "report.pdf"); got != "/premium/report.pdf" {
		t.Fatalf("ObjectFileID = %q", got)
	}
	for _, id := range []string{"report.pdf", "premium/report.pdf", "10086"} {
		if IsObjectFileID(id) {
			t.Errorf("IsObjectFileID(%q) = true", id)
		}
	}
	if !IsObjectFileID(ObjectFileID("b", "k")) {
		t.Error("IsObjectFileID(ObjectFileID) = false")
	}
}
