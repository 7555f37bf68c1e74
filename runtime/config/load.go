package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"

	"github.com/BurntSushi/toml"
)

// Load reads, decodes, completes and validates the config file at path,
// using the mode the file names (default "edge").
func Load(path string) (*Config, error) {
	return LoadWithMode(path, "")
}

// LoadWithMode is Load with the mode overridden, as the --mode flag does;
// mode "" keeps the file's.
func LoadWithMode(path, mode string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			return nil, err
		}
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return ParseWithMode(path, data, mode)
}

// Parse is Load for config text already in memory; name is the file name
// used in error messages and to resolve relative paths (wasm files).
func Parse(name string, data []byte) (*Config, error) {
	return ParseWithMode(name, data, "")
}

// ParseWithMode is Parse with the mode overridden; mode "" keeps the file's.
// On any problem the error is a *Error listing them all.
func ParseWithMode(name string, data []byte, mode string) (*Config, error) {
	// Measured before anything parses it: the source index and the TOML
	// parser both cost more than linear time in the nesting depth.
	if p := checkBounds(name, data); p != nil {
		return nil, &Error{Problems: []Problem{*p}}
	}
	src := newSourceIndex(data)
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, &Error{Problems: []Problem{syntaxProblem(name, src, err)}}
	}
	chk := &checker{file: name, src: src}
	chk.walk(raw, reflect.TypeFor[Config](), "")
	c := &Config{Path: name, src: src, raw: raw}
	// Unknown keys were found by the checker, which, unlike
	// MetaData.Undecoded, knows the free-form tables (plugin config,
	// metadata) take any key.
	if _, err := toml.Decode(string(data), c); err != nil {
		if len(chk.problems) == 0 {
			// The checker should have caught every type error; this is
			// the safety net for what it does not model.
			chk.problems = append(chk.problems, syntaxProblem(name, src, err))
		}
		sortProblems(chk.problems)
		return nil, &Error{Problems: chk.problems}
	}
	// Unknown keys do not stop the decode, so report the remaining
	// problems too: one run of `sluice validate` should list them all.
	c.resolvePaths()
	if mode != "" {
		c.Mode = mode
	}
	if err := c.ApplyMode(c.Mode); err != nil {
		var ce *Error
		if !errors.As(err, &ce) {
			return nil, err
		}
		chk.problems = append(chk.problems, ce.Problems...)
	}
	if len(chk.problems) > 0 {
		sortProblems(chk.problems)
		return nil, &Error{Problems: chk.problems}
	}
	return c, nil
}

// decodeErrLine pulls the line and key out of the plain errors
// BurntSushi/toml returns for type mismatches ("toml: line 3 (last key
// "a.b"): ...").
var decodeErrLine = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key "([^"]*)"\): (.*)$`)

func syntaxProblem(name string, src *sourceIndex, err error) Problem {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		key := pe.LastKey
		if p := src.pathAt(pe.Position.Line); p != "" {
			key = p
		}
		return Problem{File: name, Line: pe.Position.Line, Key: key, Msg: pe.Message}
	}
	if m := decodeErrLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		if line == 0 {
			line = src.Line(m[2])
		}
		return Problem{File: name, Line: line, Key: m[2], Msg: m[3]}
	}
	return Problem{File: name, Msg: err.Error()}
}

// defined reports whether the file set the key at path, where each step is
// a key name (string) or an array index (int). Defaults that must tell
// "unset" from an explicit zero ("timeout = \"0s\"") use it.
func (c *Config) defined(path ...any) bool {
	var v any = c.raw
	for _, step := range path {
		switch s := step.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return false
			}
			if v, ok = m[s]; !ok {
				return false
			}
		case int:
			rv := reflect.ValueOf(v)
			if v == nil || rv.Kind() != reflect.Slice || s >= rv.Len() {
				return false
			}
			v = rv.Index(s).Interface()
		}
	}
	return true
}
