// Package config reads edgeproxy's config.yaml into one Go struct made of the
// per-package Config structs, then applies overrides from the environment.
//
// It only decodes: it checks that every key exists and every value has the
// right form, never whether a value is sensible. That belongs to each
// package's New, which knows its defaults and limits.
//
// # The file
//
// Keys are the `yaml:"name"` tags of the destination's fields (a field
// without a tag uses its lower-cased Go name, like gopkg.in/yaml.v3; `yaml:"-"`
// hides a field; `yaml:",inline"` on a struct field lifts its keys into the
// parent). Decoding is strict:
//
//   - A key the destination does not have is an error, at any depth:
//     config: unknown key "cache.memroy_bytes" (line 12).
//   - A key given twice in one mapping is an error.
//   - A value of the wrong shape or form is an error naming the key and the
//     line of the key (not of an aliased value):
//     config: key "listen": expected a string, got a mapping (line 3),
//     config: key "cache.disk_bytes": invalid size "2GB2" (line 9).
//     Items of a sequence are named by index: "cache.tiers[0].bytes".
//   - A file holding more than one YAML document is an error, and so is a
//     tag other than YAML's standard ones (!!binary included), and so is a
//     document that expands, aliases included, to more than 262144 values.
//
// Decoding fills in, it does not reset. The caller pre-fills dst with its
// defaults; an empty file, an absent key, or a key with an empty or null value
// (`key:` or `key: ~`) leaves the field as it was. A mapping decoded into a
// struct sets only the fields it names. A sequence or mapping decoded into a
// slice or map replaces the whole slice or map: there is no way to add one
// entry to a default list. On error dst may be partly filled; do not use it.
//
// Values are read as follows; environment variables use exactly the same rules:
//
//   - string: the scalar's text as written ("0123" stays "0123"); from the
//     environment, the value exactly, spaces included.
//   - bool: true or false, in any letter case. yes/no/on/off/1/0 are errors.
//   - integers (int, int64, uint8, ...): a decimal number ("-3", "1048576"),
//     or a size as accepted by ParseSize ("2GiB", "1.5GB"). Hex, octal and
//     digit separators are errors; so is a value the field cannot hold.
//   - floats: a decimal number as accepted by strconv.ParseFloat; NaN and
//     infinities are errors.
//   - time.Duration: a Go duration ("30s", "1h30m", "250ms"). A bare number
//     other than 0 is an error because its unit would be a guess.
//   - types implementing encoding.TextUnmarshaler (slog.Level, netip.Addr):
//     their UnmarshalText decides.
//   - []T: a YAML sequence; map[string]T: a YAML mapping; structs and
//     pointers to them: a YAML mapping. A nil pointer is allocated only when
//     its key is present and not null, or a variable sets a key below it.
//
// Anchors, aliases and merge keys (<<: *defaults) work as in YAML 1.1: keys
// written in a mapping win over merged ones.
//
// # The environment
//
// Every setting reachable from the top through struct fields (and pointers to
// structs) can be overridden by an environment variable whose name is
// EDGEPROXY_ followed by the setting's key path, where each dot between keys
// and every other character that is not an ASCII letter or digit becomes an
// underscore, and letters are upper-cased: origin.access_key is
// EDGEPROXY_ORIGIN_ACCESS_KEY, cache.memory_bytes is
// EDGEPROXY_CACHE_MEMORY_BYTES. EnvName computes it.
//
// Environment values win over the file. They are read like the file's
// scalars (sizes, durations, true/false). A list of scalars is written
// comma-separated, each item trimmed of spaces (EDGEPROXY_ORIGIN_BUCKETS=a,b);
// an empty value sets an empty list, and an item cannot contain a comma. Maps,
// lists of structs, lists of lists, and anything inside a map or a list can be
// set only in the file.
//
// Only variables whose name starts with EDGEPROXY_ (upper case) are looked at.
// Such a variable that names no setting is an error, so a misspelt override
// fails loudly instead of being ignored. The one exception is EDGEPROXY_CONFIG
// (EnvConfigFile), reserved for the path of the config file. A caller that
// needs more exceptions removes them from the environ it passes in. When the
// same variable appears twice in environ, the first one counts, as with
// os.Getenv.
package config
