package config

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
)

var (
	durationType        = reflect.TypeFor[time.Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// field is one key of a struct type.
type field struct {
	name  string // the YAML key
	index []int  // for reflect.Value.FieldByIndex; longer than 1 for inlined structs
}

// fieldCache maps a struct type to its []field (or error), computed once.
var fieldCache sync.Map

// fieldsOf returns the YAML keys of struct type t in declaration order,
// following the tag rules of gopkg.in/yaml.v3 that matter for configs.
func fieldsOf(t reflect.Type) ([]field, error) {
	type result struct {
		fields []field
		err    error
	}
	if r, ok := fieldCache.Load(t); ok {
		return r.(result).fields, r.(result).err
	}
	var out []field
	seen := map[string]bool{}
	var add func(t reflect.Type, prefix []int) error
	add = func(t reflect.Type, prefix []int) error {
		for i := range t.NumField() {
			sf := t.Field(i)
			name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			inline := hasOption(opts, "inline")
			// An embedded struct of an unexported type may still be inlined:
			// reflect lets its exported fields be set.
			if name == "-" || !sf.IsExported() && !(inline && sf.Anonymous && sf.Type.Kind() == reflect.Struct) {
				continue
			}
			index := append(append([]int(nil), prefix...), i)
			if inline {
				if sf.Type.Kind() != reflect.Struct {
					return fmt.Errorf("field %s.%s: inline needs a struct, not %s", t, sf.Name, sf.Type)
				}
				if err := add(sf.Type, index); err != nil {
					return err
				}
				continue
			}
			if name == "" {
				name = strings.ToLower(sf.Name)
			}
			if seen[name] {
				return fmt.Errorf("type %s: two fields use the key %q", t, name)
			}
			seen[name] = true
			out = append(out, field{name: name, index: index})
		}
		return nil
	}
	err := add(t, nil)
	fieldCache.Store(t, result{out, err})
	return out, err
}

func hasOption(opts, want string) bool {
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		if o == want {
			return true
		}
	}
	return false
}

// isScalar reports whether values of t are written as one YAML scalar.
func isScalar(t reflect.Type) bool {
	if t == durationType || reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return true
	}
	switch t.Kind() {
	case reflect.Bool, reflect.String,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// deref follows pointers from v, allocating nil ones, and returns the
// pointed-to value.
func deref(v reflect.Value) reflect.Value {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
	}
	return v
}

// elemType strips pointers from t.
func elemType(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// setScalar parses s by the rules in the package doc and stores it in v,
// which must be addressable and of a scalar type (or pointers to one). The
// error does not name the package or the key; the caller adds them.
func setScalar(v reflect.Value, s string) error {
	v = deref(v)
	t := v.Type()
	if t == durationType {
		d, err := parseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	}
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		p := reflect.New(t)
		if err := p.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			return fmt.Errorf("invalid value %q: %v", s, err)
		}
		v.Set(p.Elem())
		return nil
	}
	switch t.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		switch {
		case strings.EqualFold(s, "true"):
			v.SetBool(true)
		case strings.EqualFold(s, "false"):
			v.SetBool(false)
		default:
			return fmt.Errorf("invalid bool %q (want true or false)", s)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := parseInt(s)
		if err != nil {
			return err
		}
		if v.OverflowInt(n) {
			return fmt.Errorf("%q is out of range for %s", s, t)
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n, err := parseSize(s)
		if err != nil {
			return err
		}
		if v.OverflowUint(uint64(n)) {
			return fmt.Errorf("%q is out of range for %s", s, t)
		}
		v.SetUint(uint64(n))
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), t.Bits())
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("invalid number %q", s)
		}
		v.SetFloat(f)
	default:
		// The type walk in envTable rejects such types before any decoding.
		return fmt.Errorf("unsupported type %s", t)
	}
	return nil
}

// parseInt reads a signed decimal integer or, failing that, a size.
func parseInt(s string) (int64, error) {
	t := strings.TrimSpace(s)
	n, err := strconv.ParseInt(t, 10, 64)
	if err == nil {
		return n, nil
	}
	if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
		return 0, fmt.Errorf("%q is out of range for int64", s)
	}
	return parseSize(s)
}

// parseDuration is time.ParseDuration, except that a bare number other than
// zero is refused: "30" could mean seconds or milliseconds.
func parseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if t != "" && strings.Trim(t, "+-.0123456789") == "" {
		if f, err := strconv.ParseFloat(t, 64); err == nil && f == 0 {
			return 0, nil
		}
		return 0, fmt.Errorf("invalid duration %q: a number needs a unit (ns, us, ms, s, m, h)", s)
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	return d, nil
}
