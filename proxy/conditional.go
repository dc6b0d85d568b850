package proxy

import (
	"time"

	"github.com/edgeproxy/edgeproxy/internal/httpsyntax"
)

// conditions holds the raw values of the request's conditional header fields,
// nil or empty when a field is absent. The caller fills it from fasthttp
// without copying, so a conditions must not outlive the request it came from.
type conditions struct {
	IfMatch           []byte
	IfNoneMatch       []byte
	IfModifiedSince   []byte
	IfUnmodifiedSince []byte
	IfRange           []byte
	// HasRange reports whether the request carries a Range header field.
	HasRange bool
}

// outcome is the result of evaluating preconditions.
type outcome struct {
	// Status is 0 to proceed with the method, 304 Not Modified or
	// 412 Precondition Failed.
	Status int
	// UseRange reports whether the request's Range header field (if any)
	// applies. False means serve the full 200 representation. It is always
	// false when Status is not 0.
	UseRange bool
}

// evaluate decides the preconditions of a request for the current
// representation, following the order of RFC 9110 section 13.2.2 so that the
// precedence between the fields is decided in this one place.
//
// isGetOrHead is true for GET and HEAD. etag is the representation's strong
// entity-tag as on the wire (quoted, `"abc"`); lastModified is its
// modification time, zero when unknown. date is the response's Date: when
// the proxy generates the response (or the origin's Date when known); it
// decides whether lastModified is a strong validator. evaluate assumes the
// representation exists (so `*` always matches); the caller answers 404
// before asking.
//
// Choices where the RFC leaves room:
//   - Dates are compared at second precision, since HTTP-date has no finer
//     resolution.
//   - If-Unmodified-Since and If-Modified-Since are ignored when lastModified
//     is unknown, as RFC 9110 13.1.3 and 13.1.4 allow.
//   - An If-Modified-Since or If-Unmodified-Since date in the future is not
//     ignored (RFC 9110 13.1.3 says it is invalid), as net/http does not;
//     date serves only the If-Range rule below.
//   - An If-Range date matches only if it equals lastModified and
//     lastModified is at least one second before date (RFC 9110 13.1.5 with
//     8.8.2.2): a Last-Modified in the same second as the response could be
//     shared by two versions replaced within that second, and resuming on
//     it would splice old bytes to new ones. The comparison uses
//     lastModified at full precision (sub-second where the origin has it),
//     which can only make the date weaker, never stronger. A date in the
//     future is therefore weak too.
//   - Range handling is defined for GET only (RFC 9110 14.2); evaluate
//     reports UseRange for HEAD too, so the caller can send the same header
//     fields that the GET would get, and false for every other method.
//   - A list member that is not a valid entity-tag (unquoted, missing end
//     quote, lowercase "w/") never matches and ends the parse of the list,
//     because etagc includes the comma and the list cannot be resynchronized.
//     Members before it still count. `*` matches only as the whole field.
//
// evaluate does not allocate.
func evaluate(c *conditions, isGetOrHead bool, etag string, lastModified, date time.Time) outcome {
	if c == nil {
		return outcome{}
	}
	lmKnown := !lastModified.IsZero()
	lm := lastModified.Unix()

	// Step 1 (13.1.1): If-Match uses the strong comparison.
	// Step 2 (13.1.4): If-Unmodified-Since only when If-Match is absent.
	if v := httpsyntax.TrimOWS(c.IfMatch); len(v) > 0 {
		if !matchETagList(v, etag, false) {
			return outcome{Status: 412}
		}
	} else if v := httpsyntax.TrimOWS(c.IfUnmodifiedSince); len(v) > 0 && lmKnown {
		if d, ok := parseHTTPDate(v); ok && lm > d {
			return outcome{Status: 412}
		}
	}

	// Step 3 (13.1.2): If-None-Match uses the weak comparison.
	// Step 4 (13.1.3): If-Modified-Since only when If-None-Match is absent,
	// and only for GET and HEAD.
	if v := httpsyntax.TrimOWS(c.IfNoneMatch); len(v) > 0 {
		if matchETagList(v, etag, true) {
			if isGetOrHead {
				return outcome{Status: 304}
			}
			return outcome{Status: 412}
		}
	} else if v := httpsyntax.TrimOWS(c.IfModifiedSince); isGetOrHead && len(v) > 0 && lmKnown {
		if d, ok := parseHTTPDate(v); ok && lm <= d {
			return outcome{Status: 304}
		}
	}

	// Step 5 (13.1.5): If-Range decides whether Range applies. It is ignored
	// without a Range header field.
	if !c.HasRange || !isGetOrHead {
		return outcome{}
	}
	v := httpsyntax.TrimOWS(c.IfRange)
	if len(v) == 0 {
		return outcome{UseRange: true}
	}
	return outcome{UseRange: ifRangeMatches(v, etag, lastModified, date)}
}

// ifRangeMatches evaluates an If-Range value: an entity-tag compared strongly
// (a weak tag never matches), or an HTTP-date equal to a lastModified that
// is strong at date. RFC 9110 13.1.5 tells the two apart by a DQUOTE in the
// first three bytes.
func ifRangeMatches(v []byte, etag string, lastModified, date time.Time) bool {
	if v[0] == '"' || (len(v) >= 3 && v[0] == 'W' && v[1] == '/' && v[2] == '"') {
		weak, opaque, rest, ok := scanETag(v)
		if !ok || weak || len(rest) != 0 {
			return false
		}
		curWeak, curOpaque, ok := splitETag(etag)
		return ok && !curWeak && string(opaque) == curOpaque
	}
	// RFC 9110 13.1.5: a date that is not a strong validator (8.8.2.2:
	// Last-Modified at least one second before Date) fails the condition.
	if lastModified.IsZero() || date.Sub(lastModified) < time.Second {
		return false
	}
	d, ok := parseHTTPDate(v)
	return ok && d == lastModified.Unix()
}

// matchETagList reports whether an If-Match or If-None-Match field value
// matches etag, using the weak comparison when weak is true and the strong one
// otherwise (RFC 9110 8.8.3.2). v is already trimmed and not empty.
func matchETagList(v []byte, etag string, weak bool) bool {
	if len(v) == 1 && v[0] == '*' {
		return true
	}
	curWeak, curOpaque, curOK := splitETag(etag)
	for {
		// Empty list members are allowed (RFC 9110 5.6.1).
		for len(v) > 0 && (v[0] == ',' || v[0] == ' ' || v[0] == '\t') {
			v = v[1:]
		}
		if len(v) == 0 {
			return false
		}
		tagWeak, opaque, rest, ok := scanETag(v)
		if !ok {
			return false
		}
		if curOK && string(opaque) == curOpaque && (weak || (!tagWeak && !curWeak)) {
			return true
		}
		rest = httpsyntax.TrimLeftOWS(rest)
		if len(rest) > 0 && rest[0] != ',' {
			return false
		}
		v = rest
	}
}

// scanETag reads one entity-tag at the start of v:
//
//	entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE
//	etagc      = %x21 / %x23-7E / obs-text
//
// It returns the opaque-tag with its quotes and the bytes after it.
func scanETag(v []byte) (weak bool, opaque, rest []byte, ok bool) {
	if len(v) >= 2 && v[0] == 'W' && v[1] == '/' {
		weak = true
		v = v[2:]
	}
	if len(v) < 2 || v[0] != '"' {
		return false, nil, nil, false
	}
	for i := 1; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '"':
			return weak, v[:i+1], v[i+1:], true
		case c == 0x21 || (c >= 0x23 && c != 0x7f):
			// etagc
		default:
			return false, nil, nil, false
		}
	}
	return false, nil, nil, false
}

// splitETag parses the representation's own entity-tag. ok is false when
// etag is empty or malformed; then nothing but `*` matches it.
func splitETag(etag string) (weak bool, opaque string, ok bool) {
	if len(etag) >= 2 && etag[0] == 'W' && etag[1] == '/' {
		weak = true
		etag = etag[2:]
	}
	if len(etag) < 2 || etag[0] != '"' || etag[len(etag)-1] != '"' {
		return false, "", false
	}
	return weak, etag, true
}

// parseHTTPDate parses an HTTP-date (RFC 9110 5.6.7) into Unix seconds. It
// accepts the three forms a recipient must, case-sensitively as the RFC says:
//
//	Sun, 06 Nov 1994 08:49:37 GMT   IMF-fixdate
//	Sunday, 06-Nov-94 08:49:37 GMT  obsolete RFC 850 format
//	Sun Nov  6 08:49:37 1994        obsolete asctime format
//
// The day name is checked for syntax but not against the date, as net/http
// does. A two-digit RFC 850 year is read the way the time package reads it
// (69-99 -> 19xx, 00-68 -> 20xx) rather than by the RFC's "not more than 50
// years in the future" rule, which needs a clock; the two differ only for
// years 2069-2076, which no validator carries. Second 60 (a leap second) is
// accepted and counts as the next second. It does not allocate.
func parseHTTPDate(b []byte) (int64, bool) {
	switch {
	case len(b) == 29 && b[3] == ',':
		return parseIMFFixdate(b)
	case len(b) == 24 && b[3] == ' ':
		return parseASCTime(b)
	default:
		return parseRFC850Date(b)
	}
}

// parseIMFFixdate parses "Sun, 06 Nov 1994 08:49:37 GMT".
func parseIMFFixdate(b []byte) (int64, bool) {
	if !httpDayName(b[:3], false) || b[3] != ',' || b[4] != ' ' || b[7] != ' ' ||
		b[11] != ' ' || b[16] != ' ' || string(b[25:]) != " GMT" {
		return 0, false
	}
	day, ok1 := httpDigits(b[5:7])
	month, ok2 := httpMonth(b[8:11])
	year, ok3 := httpDigits(b[12:16])
	if !ok1 || !ok2 || !ok3 {
		return 0, false
	}
	return httpDateUnix(year, month, day, b[17:25])
}

// parseRFC850Date parses "Sunday, 06-Nov-94 08:49:37 GMT".
func parseRFC850Date(b []byte) (int64, bool) {
	const tail = len(", 06-Nov-94 08:49:37 GMT")
	if len(b) < tail+6 || len(b) > tail+9 {
		return 0, false
	}
	n := len(b) - tail
	if !httpDayName(b[:n], true) {
		return 0, false
	}
	b = b[n:]
	if b[0] != ',' || b[1] != ' ' || b[4] != '-' || b[8] != '-' || b[11] != ' ' ||
		string(b[20:]) != " GMT" {
		return 0, false
	}
	day, ok1 := httpDigits(b[2:4])
	month, ok2 := httpMonth(b[5:8])
	year, ok3 := httpDigits(b[9:11])
	if !ok1 || !ok2 || !ok3 {
		return 0, false
	}
	if year >= 69 {
		year += 1900
	} else {
		year += 2000
	}
	return httpDateUnix(year, month, day, b[12:20])
}

// parseASCTime parses "Sun Nov  6 08:49:37 1994"; the day may also be "06".
func parseASCTime(b []byte) (int64, bool) {
	if !httpDayName(b[:3], false) || b[3] != ' ' || b[7] != ' ' || b[10] != ' ' || b[19] != ' ' {
		return 0, false
	}
	month, ok1 := httpMonth(b[4:7])
	dayField := b[8:10]
	if dayField[0] == ' ' {
		dayField = dayField[1:]
	}
	day, ok2 := httpDigits(dayField)
	year, ok3 := httpDigits(b[20:24])
	if !ok1 || !ok2 || !ok3 {
		return 0, false
	}
	return httpDateUnix(year, month, day, b[11:19])
}

// httpDateUnix validates the calendar date and the "HH:MM:SS" time of day.
func httpDateUnix(year int, month time.Month, day int, hms []byte) (int64, bool) {
	if hms[2] != ':' || hms[5] != ':' {
		return 0, false
	}
	hour, ok1 := httpDigits(hms[0:2])
	minute, ok2 := httpDigits(hms[3:5])
	second, ok3 := httpDigits(hms[6:8])
	if !ok1 || !ok2 || !ok3 || hour > 23 || minute > 59 || second > 60 {
		return 0, false
	}
	if day < 1 || day > httpDaysIn(year, month) {
		return 0, false
	}
	return time.Date(year, month, day, hour, minute, second, 0, time.UTC).Unix(), true
}

func httpDaysIn(year int, month time.Month) int {
	switch month {
	case time.February:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}

// httpDigits parses a short run of ASCII digits.
func httpDigits(b []byte) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

const httpMonthNames = "JanFebMarAprMayJunJulAugSepOctNovDec"

func httpMonth(b []byte) (time.Month, bool) {
	for i := 0; i < len(httpMonthNames); i += 3 {
		if string(b) == httpMonthNames[i:i+3] {
			return time.Month(i/3 + 1), true
		}
	}
	return 0, false
}

var (
	httpDayNamesShort = [...]string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
	httpDayNamesLong  = [...]string{"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}
)

func httpDayName(b []byte, long bool) bool {
	names := httpDayNamesShort[:]
	if long {
		names = httpDayNamesLong[:]
	}
	for _, n := range names {
		if string(b) == n {
			return true
		}
	}
	return false
}
