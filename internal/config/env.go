package config

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// EnvPrefix starts the name of every environment variable Decode looks at.
const EnvPrefix = "EDGEPROXY_"

// EnvConfigFile is the one EDGEPROXY_ variable that is not a setting: the
// command reads the config file's path from it. Decode ignores it unless the
// destination has a key of that name.
const EnvConfigFile = "EDGEPROXY_CONFIG"

// EnvName returns the environment variable that overrides the setting at
// keyPath: "origin.access_key" gives "EDGEPROXY_ORIGIN_ACCESS_KEY". Each
// character that is not an ASCII letter or digit becomes "_", and letters are
// upper-cased.
func EnvName(keyPath string) string {
	var b strings.Builder
	b.Grow(len(EnvPrefix) + len(keyPath))
	b.WriteString(EnvPrefix)
	for _, r := range keyPath {
		switch {
		case 'a' <= r && r <= 'z':
			b.WriteRune(r - ('a' - 'A'))
		case 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// envVar is what one environment variable name refers to.
type envVar struct {
	key   string  // the key path
	steps [][]int // field indexes from the root, one per struct level
	list  bool    // a slice of scalars, written comma-separated
	why   string  // when not empty: the key can't be set from the environment, because it is this
	other string  // when not empty: a second key with the same variable name
}

// envTables caches envTable per root type.
var envTables sync.Map

// envTable checks that every type reachable from root is one Decode supports
// and maps each variable name to the key it overrides.
func envTable(root reflect.Type) (map[string]*envVar, error) {
	type result struct {
		vars map[string]*envVar
		err  error
	}
	if r, ok := envTables.Load(root); ok {
		return r.(result).vars, r.(result).err
	}
	w := typeWalker{vars: map[string]*envVar{}, active: map[reflect.Type]bool{}}
	err := w.walk(root, "", nil, true)
	if err != nil {
		err = fmt.Errorf("config: %w", err)
	}
	envTables.Store(root, result{w.vars, err})
	return w.vars, err
}

type typeWalker struct {
	vars   map[string]*envVar
	active map[reflect.Type]bool // composite types on the current path, to stop at recursive types
}

// walk visits type t found at key. Only keys reached through struct fields
// from the root (reachable true) get a variable; the rest are only checked.
func (w *typeWalker) walk(t reflect.Type, key string, steps [][]int, reachable bool) error {
	t = elemType(t)
	add := func(list bool, why string) {
		if !reachable {
			return
		}
		name := EnvName(key)
		if prev, ok := w.vars[name]; ok {
			prev.other = key
			return
		}
		w.vars[name] = &envVar{key: key, steps: steps, list: list, why: why}
	}
	if isScalar(t) {
		add(false, "")
		return nil
	}
	if w.active[t] {
		// A recursive type: keys below this one are reachable only through the file.
		if t.Kind() == reflect.Struct && key != "" {
			add(false, "a group of settings")
		}
		return nil
	}
	w.active[t] = true
	defer delete(w.active, t)
	switch t.Kind() {
	case reflect.Slice:
		if isScalar(elemType(t.Elem())) {
			add(true, "")
			return nil
		}
		if elemType(t.Elem()).Kind() == reflect.Slice {
			add(false, "a list of lists")
		} else {
			add(false, "a list of mappings")
		}
		return w.walk(t.Elem(), key+"[]", nil, false)
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return fmt.Errorf("key %q: unsupported type %s (map keys must be strings)", key, t)
		}
		add(false, "a map")
		return w.walk(t.Elem(), key+".*", nil, false)
	case reflect.Struct:
		if key != "" {
			add(false, "a group of settings")
		}
		fields, err := fieldsOf(t)
		if err != nil {
			return err
		}
		for _, f := range fields {
			sub := append(append([][]int(nil), steps...), f.index)
			if err := w.walk(t.FieldByIndex(f.index).Type, joinKey(key, f.name), sub, reachable); err != nil {
				return err
			}
		}
		return nil
	}
	if key == "" {
		return fmt.Errorf("unsupported destination type %s", t)
	}
	return fmt.Errorf("key %q: unsupported type %s", key, t)
}

// applyEnv sets the settings named by the EDGEPROXY_ variables in environ.
func applyEnv(root reflect.Value, vars map[string]*envVar, environ []string) error {
	done := map[string]bool{}
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) || done[name] {
			continue
		}
		done[name] = true
		ev, ok := vars[name]
		switch {
		case !ok && name == EnvConfigFile:
			continue
		case !ok:
			return fmt.Errorf("config: env %s: no setting has this name (see EnvName)", name)
		case ev.other != "":
			return fmt.Errorf("config: env %s: ambiguous, it names both %q and %q", name, ev.key, ev.other)
		case ev.why != "":
			return fmt.Errorf("config: env %s: key %q is %s, which can't be set from the environment", name, ev.key, ev.why)
		}
		v := root
		for _, s := range ev.steps {
			v = deref(v).FieldByIndex(s)
		}
		if err := setEnv(v, val, ev.list); err != nil {
			return fmt.Errorf("config: env %s: %w", name, err)
		}
	}
	return nil
}

// setEnv stores an environment value in v: one scalar, or a comma-separated
// list when list is set.
func setEnv(v reflect.Value, val string, list bool) error {
	if !list {
		return setScalar(v, val)
	}
	v = deref(v)
	var items []string
	if val != "" {
		items = strings.Split(val, ",")
	}
	s := reflect.MakeSlice(v.Type(), len(items), len(items))
	for i, item := range items {
		if err := setScalar(s.Index(i), strings.TrimSpace(item)); err != nil {
			return fmt.Errorf("item %d: %w", i+1, err)
		}
	}
	v.Set(s)
	return nil
}
