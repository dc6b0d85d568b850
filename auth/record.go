package auth

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Record is one download token's grant as stored in Redis at
// "download:token:<token>". Two forms exist:
//
//   - the string form written by existing backends, URL-encoded fields whose
//     lifetime is the key's TTL:
//     SET download:token:abc123 "file_id=10086&user_id=9527" EX 300
//   - the hash form written by the admin API (Verifier.Create), with the same
//     field names as hash fields.
//
// Fields: file_id (required), user_id, allowed_ip (IPs and CIDRs separated by
// commas; empty means any address), max_uses (0 or absent: unlimited), rate
// (bytes per second, 0 or absent: no per-token limit), expires_at (unix
// seconds; absent: only the key TTL limits the lifetime). Unknown fields,
// such as the use-counting state the Verifier keeps in the hash, are ignored.
type Record struct {
	FileID    string
	UserID    string
	AllowedIP []netip.Prefix
	MaxUses   int
	Rate      int64
	ExpiresAt time.Time // zero: no expiry beyond the key's TTL
}

// Record field names, shared by both forms.
const (
	fieldFileID    = "file_id"
	fieldUserID    = "user_id"
	fieldAllowedIP = "allowed_ip"
	fieldMaxUses   = "max_uses"
	fieldRate      = "rate"
	fieldExpiresAt = "expires_at"
	fieldUses      = "uses"
	sessionPrefix  = "session_"
)

// recordFields lists the fields a record is built from, in the order the
// lookup script fetches them.
var recordFields = []string{fieldFileID, fieldUserID, fieldAllowedIP, fieldMaxUses, fieldRate, fieldExpiresAt}

// ErrMalformedRecord is wrapped by ParseRecord and ParseRecordFields when a
// stored record cannot be trusted; the Verifier treats it as token_invalid.
var ErrMalformedRecord = errors.New("auth: malformed token record")

// ParseRecord parses the string form of a token record. The first value of
// a repeated field wins, as with url.Values.Get.
func ParseRecord(s string) (Record, error) {
	vals, err := url.ParseQuery(s)
	if err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrMalformedRecord, err)
	}
	m := make(map[string]string, len(recordFields))
	for _, f := range recordFields {
		if v, ok := vals[f]; ok && len(v) > 0 {
			m[f] = v[0]
		}
	}
	return ParseRecordFields(m)
}

// ParseRecordFields builds a Record from the hash form's field map. It is
// pure; the errors wrap ErrMalformedRecord and name the bad field.
func ParseRecordFields(m map[string]string) (Record, error) {
	var r Record
	r.FileID = m[fieldFileID]
	if r.FileID == "" {
		return Record{}, fmt.Errorf("%w: missing %s", ErrMalformedRecord, fieldFileID)
	}
	r.UserID = m[fieldUserID]
	if s := m[fieldAllowedIP]; s != "" {
		p, err := ParseAllowedIP(s)
		if err != nil {
			return Record{}, err
		}
		r.AllowedIP = p
	}
	if s, ok := m[fieldMaxUses]; ok && s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return Record{}, fmt.Errorf("%w: %s %q is not a count", ErrMalformedRecord, fieldMaxUses, s)
		}
		r.MaxUses = n
	}
	if s, ok := m[fieldRate]; ok && s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return Record{}, fmt.Errorf("%w: %s %q is not bytes per second", ErrMalformedRecord, fieldRate, s)
		}
		r.Rate = n
	}
	if s, ok := m[fieldExpiresAt]; ok && s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		// Bound to years 1970..9999 so time arithmetic cannot overflow.
		if err != nil || n <= 0 || n > 253402300799 {
			return Record{}, fmt.Errorf("%w: %s %q is not unix seconds", ErrMalformedRecord, fieldExpiresAt, s)
		}
		r.ExpiresAt = time.Unix(n, 0)
	}
	return r, nil
}

// ParseAllowedIP parses a comma-separated list of IP addresses and CIDR
// prefixes ("10.0.0.1, 192.168.0.0/16, 2001:db8::/32"). Addresses become
// single-address prefixes; IPv4-mapped IPv6 forms are unmapped so that
// "::ffff:10.0.0.1" and "10.0.0.1" match the same clients. Empty items are
// skipped; a list with no items is an error.
func ParseAllowedIP(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		p, err := parsePrefix(item)
		if err != nil {
			return nil, fmt.Errorf("%w: %s %q: %v", ErrMalformedRecord, fieldAllowedIP, item, err)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s %q has no addresses", ErrMalformedRecord, fieldAllowedIP, s)
	}
	return out, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" {
		return netip.Prefix{}, errors.New("zoned addresses are not allowed")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// allows reports whether the record admits the client address. A record
// without allowed_ip admits every client, including an unknown (zero) one.
func (r *Record) allows(ip netip.Addr) bool {
	if len(r.AllowedIP) == 0 {
		return true
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range r.AllowedIP {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// expired reports whether expires_at has passed.
func (r *Record) expired(now time.Time) bool {
	return !r.ExpiresAt.IsZero() && !now.Before(r.ExpiresAt)
}

// fields returns the hash form of r, as Create writes it.
func (r *Record) fields() map[string]any {
	m := map[string]any{fieldFileID: r.FileID, fieldUserID: r.UserID}
	if len(r.AllowedIP) > 0 {
		s := make([]string, len(r.AllowedIP))
		for i, p := range r.AllowedIP {
			if p.IsSingleIP() {
				s[i] = p.Addr().String()
			} else {
				s[i] = p.String()
			}
		}
		m[fieldAllowedIP] = strings.Join(s, ",")
	}
	if r.MaxUses > 0 {
		m[fieldMaxUses] = strconv.Itoa(r.MaxUses)
	}
	if r.Rate > 0 {
		m[fieldRate] = strconv.FormatInt(r.Rate, 10)
	}
	if !r.ExpiresAt.IsZero() {
		m[fieldExpiresAt] = strconv.FormatInt(r.ExpiresAt.Unix(), 10)
	}
	return m
}
