package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"

	"gopkg.in/yaml.v3"
)

// maxValues bounds the YAML nodes one Decode visits, aliases expanded, so
// that a "billion laughs" document fails instead of exhausting memory.
const maxValues = 1 << 18

// Load reads the YAML file at path into dst, a non-nil pointer to a struct
// pre-filled with defaults, then applies the EDGEPROXY_ variables in environ
// (normally os.Environ()). See the package doc for the rules. Errors name the
// key or variable at fault.
func Load(path string, dst any, environ []string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return Decode(data, dst, environ)
}

// Decode is Load for a document already in memory: tests and the embedded
// default configuration use it.
func Decode(data []byte, dst any, environ []string) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config: destination must be a non-nil pointer to a struct, not %T", dst)
	}
	root := rv.Elem()
	// Checking the type first reports a bad destination even when the file
	// does not mention the bad field, and builds the table the environment needs.
	vars, err := envTable(root.Type())
	if err != nil {
		return err
	}
	doc, err := parse(data)
	if err != nil {
		return err
	}
	if doc != nil {
		d := decoder{expanding: map[*yaml.Node]bool{}}
		if err := d.value(doc, root, "", doc.Line); err != nil {
			return err
		}
	}
	return applyEnv(root, vars, environ)
}

// parse returns the root node of the only document in data, or nil when
// there is none.
func parse(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, fmt.Errorf("config: %w", err)
	default:
		return nil, fmt.Errorf("config: more than one YAML document (the second starts at line %d)", extra.Line)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

// decoder walks a yaml.Node tree and a destination value side by side.
type decoder struct {
	visited   int
	expanding map[*yaml.Node]bool // anchored nodes being decoded through an alias
}

// value decodes n into v. key is v's dotted key path ("" for the top) and
// line is where errors point: the line of the key, or of the sequence item,
// which is where the operator looks even when n is an alias or a block.
func (d *decoder) value(n *yaml.Node, v reflect.Value, key string, line int) error {
	if d.visited++; d.visited > maxValues {
		return fmt.Errorf("config: document too large (more than %d values with aliases expanded)", maxValues)
	}
	if n.Kind == yaml.AliasNode {
		return d.alias(n, key, func(target *yaml.Node) error { return d.value(target, v, key, line) })
	}
	if tag := n.ShortTag(); !standardTags[tag] {
		return nodeErr(line, key, "unsupported tag %q", tag)
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil // absent and null keys leave the default in place
	}
	t := elemType(v.Type())
	if isScalar(t) {
		if n.Kind != yaml.ScalarNode {
			return wrongKind(n, t, key, line)
		}
		if err := setScalar(v, n.Value); err != nil {
			return nodeErr(line, key, "%v", err)
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return wrongKind(n, t, key, line)
		}
		return d.structValue(n, deref(v), key)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return wrongKind(n, t, key, line)
		}
		return d.mapValue(n, deref(v), key)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return wrongKind(n, t, key, line)
		}
		return d.sliceValue(n, deref(v), key)
	}
	// envTable has rejected every other type before decoding started.
	return nodeErr(line, key, "unsupported type %s", t)
}

// alias calls f with the alias's target, refusing an anchor that contains
// itself (yaml.v3 builds such cycles for "&a [*a]").
func (d *decoder) alias(n *yaml.Node, key string, f func(*yaml.Node) error) error {
	target := n.Alias
	if target == nil {
		return nodeErr(n.Line, key, "alias %q has no anchor", n.Value)
	}
	if d.expanding[target] {
		return nodeErr(n.Line, key, "alias %q refers to a node that contains it", n.Value)
	}
	d.expanding[target] = true
	defer delete(d.expanding, target)
	return f(target)
}

func (d *decoder) structValue(n *yaml.Node, v reflect.Value, key string) error {
	fields, err := fieldsOf(v.Type())
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	pairs, err := d.pairs(n, key)
	if err != nil {
		return err
	}
	for _, p := range pairs {
		sub := joinKey(key, p.name)
		f, ok := lookup(fields, p.name)
		if !ok {
			return fmt.Errorf("config: unknown key %q (line %d)", sub, p.key.Line)
		}
		if err := d.value(p.val, v.FieldByIndex(f.index), sub, p.key.Line); err != nil {
			return err
		}
	}
	return nil
}

func lookup(fields []field, name string) (field, bool) {
	for _, f := range fields {
		if f.name == name {
			return f, true
		}
	}
	return field{}, false
}

// mapValue replaces v with a new map holding n's entries.
func (d *decoder) mapValue(n *yaml.Node, v reflect.Value, key string) error {
	t := v.Type()
	pairs, err := d.pairs(n, key)
	if err != nil {
		return err
	}
	m := reflect.MakeMapWithSize(t, len(pairs))
	for _, p := range pairs {
		elem := reflect.New(t.Elem()).Elem()
		if err := d.value(p.val, elem, joinKey(key, p.name), p.key.Line); err != nil {
			return err
		}
		m.SetMapIndex(reflect.ValueOf(p.name).Convert(t.Key()), elem)
	}
	v.Set(m)
	return nil
}

// sliceValue replaces v with a new slice holding n's items.
func (d *decoder) sliceValue(n *yaml.Node, v reflect.Value, key string) error {
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		if err := d.value(item, s.Index(i), fmt.Sprintf("%s[%d]", key, i), item.Line); err != nil {
			return err
		}
	}
	v.Set(s)
	return nil
}

// pair is one entry of a mapping.
type pair struct {
	name     string
	key, val *yaml.Node
}

// pairs lists the entries of mapping n with merge keys resolved: entries
// written in n come first, then merged entries whose key n does not have
// (earlier merge sources win over later ones, as YAML's merge key spec says).
// A key written twice in n is an error.
func (d *decoder) pairs(n *yaml.Node, key string) ([]pair, error) {
	var out, merged []pair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.AliasNode && k.Alias != nil {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode {
			return nil, nodeErr(k.Line, key, "a key must be a scalar, not %s", kindName(k))
		}
		if k.ShortTag() == "!!merge" {
			m, err := d.mergeSources(val, key)
			if err != nil {
				return nil, err
			}
			merged = append(merged, m...)
			continue
		}
		if first, ok := seen[k.Value]; ok {
			return nil, nodeErr(n.Content[i].Line, joinKey(key, k.Value), "duplicate key (first at line %d)", first.Line)
		}
		seen[k.Value] = n.Content[i]
		out = append(out, pair{name: k.Value, key: n.Content[i], val: val})
	}
	for _, p := range merged {
		if _, ok := seen[p.name]; !ok {
			seen[p.name] = p.key
			out = append(out, p)
		}
	}
	return out, nil
}

// mergeSources returns the entries a merge key brings in: its value is a
// mapping, or a sequence of mappings of which earlier ones win.
func (d *decoder) mergeSources(val *yaml.Node, key string) ([]pair, error) {
	if d.visited++; d.visited > maxValues {
		return nil, fmt.Errorf("config: document too large (more than %d values with aliases expanded)", maxValues)
	}
	var out []pair
	var err error
	switch val.Kind {
	case yaml.AliasNode:
		err = d.alias(val, key, func(target *yaml.Node) error {
			out, err = d.mergeSources(target, key)
			return err
		})
	case yaml.MappingNode:
		out, err = d.pairs(val, key)
	case yaml.SequenceNode:
		for _, item := range val.Content {
			if item.Kind == yaml.SequenceNode {
				return nil, nodeErr(item.Line, key, "a merge (<<) needs a mapping or a sequence of mappings")
			}
			var m []pair
			if m, err = d.mergeSources(item, key); err != nil {
				return nil, err
			}
			out = append(out, m...)
		}
	default:
		err = nodeErr(val.Line, key, "a merge (<<) needs a mapping or a sequence of mappings")
	}
	return out, err
}

// standardTags are the tags a config may carry, explicitly or resolved.
var standardTags = map[string]bool{
	"!!str": true, "!!int": true, "!!float": true, "!!bool": true, "!!null": true,
	"!!timestamp": true, "!!map": true, "!!seq": true,
}

// wrongKind reports that n's shape does not fit type t.
func wrongKind(n *yaml.Node, t reflect.Type, key string, line int) error {
	return nodeErr(line, key, "expected %s, got %s", describe(t), kindName(n))
}

// describe names what a YAML value for t must look like.
func describe(t reflect.Type) string {
	t = elemType(t)
	switch {
	case t == durationType:
		return "a duration"
	case reflect.PointerTo(t).Implements(textUnmarshalerType):
		return "a string"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "an integer or size"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a sequence"
	case reflect.Struct, reflect.Map:
		return "a mapping"
	}
	return "a string"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a sequence"
	case yaml.AliasNode:
		return "an alias"
	}
	return "a scalar"
}

// nodeErr formats a one-line error about the value at key, written at line.
func nodeErr(line int, key, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	where := ""
	if line > 0 {
		where = fmt.Sprintf(" (line %d)", line)
	}
	if key == "" {
		return fmt.Errorf("config: top level: %s%s", msg, where)
	}
	return fmt.Errorf("config: key %q: %s%s", key, msg, where)
}

func joinKey(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}
