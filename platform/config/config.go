// Package config fills a process's configuration struct from defaults, environment variables
// and command-line flags, in that order of precedence (a flag beats the environment, which
// beats the default), and renders it for the start-up log with secrets masked.
//
// A configuration is a plain struct whose leaf fields carry tags:
//
//	type Config struct {
//		HTTPAddr string        `flag:"http-addr" default:"127.0.0.1:8080" help:"public API address"`
//		Token    string        `flag:"token" secret:"true" help:"API token"`
//		Level    slog.Level    `flag:"log-level" default:"info" help:"debug, info, warn or error"`
//		Timeout  time.Duration `flag:"timeout" default:"5s"`
//	}
//
// The flag name gives the environment name too: with prefix "PIAZZA", "http-addr" is read from
// PIAZZA_HTTP_ADDR; an `env:"NAME"` tag names a variable outside the prefix instead (for
// standard ones such as OTEL_EXPORTER_OTLP_ENDPOINT). Nested structs without a flag tag are walked, so a process can group its
// settings. Supported leaf types: string, bool, int, int64, float64, time.Duration, []string
// (comma-separated) and any type implementing encoding.TextUnmarshaler.
//
// This is written here rather than taken from a configuration library because the binary has
// subcommands with different flag sets and tests inject their own environment; the libraries we
// looked at read os.Args and the process environment themselves.
package config

import (
	"encoding"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Source says where values come from. Loading never reads the process environment itself:
// the caller passes os.Args and os.LookupEnv (main does) or fixed values (tests do).
type Source struct {
	// Prefix of environment variable names, without the trailing underscore (e.g. "PIAZZA").
	Prefix string
	// Args are the command-line arguments to parse, without the program and subcommand names.
	Args []string
	// LookupEnv returns an environment variable; nil means no environment.
	LookupEnv func(key string) (string, bool)
}

// Error is a configuration mistake, naming the setting both ways it can be given.
type Error struct {
	Flag  string // e.g. "log-level"
	Env   string // e.g. "PIAZZA_LOG_LEVEL"
	Value string
	Err   error
}

func (e *Error) Error() string {
	if e.Env == "" {
		return fmt.Sprintf("--%s: %v", e.Flag, e.Err)
	}
	return fmt.Sprintf("%s (--%s) = %q: %v", e.Env, e.Flag, e.Value, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// field is one leaf of the configuration struct.
type field struct {
	name       string // flag name
	env        string // environment name; empty when there is no prefix
	help       string
	def        string
	hasDefault bool
	secret     bool
	value      reflect.Value
}

// Load registers every tagged field of *cfg on fs, applies defaults, then the environment, then
// parses src.Args. It returns an *Error naming the setting for any value that does not parse.
// fs should use flag.ContinueOnError; its usage lists each flag with its environment name.
func Load(fs *flag.FlagSet, cfg any, src Source) error {
	fields, err := collect(cfg, src.Prefix)
	if err != nil {
		return err
	}
	for _, f := range fields {
		if !f.hasDefault {
			continue
		}
		if err := set(f.value, f.def); err != nil {
			return fmt.Errorf("config: bad default for --%s: %w", f.name, err)
		}
	}
	if src.LookupEnv != nil {
		for _, f := range fields {
			v, ok := src.LookupEnv(f.env)
			if !ok || f.env == "" {
				continue
			}
			if err := set(f.value, v); err != nil {
				return &Error{Flag: f.name, Env: f.env, Value: v, Err: err}
			}
		}
	}
	for _, f := range fields {
		help := f.help
		if f.env != "" {
			help = fmt.Sprintf("%s (env %s)", help, f.env)
		}
		fs.Var(flagValue{f.value}, f.name, help)
	}
	if err := fs.Parse(src.Args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// Attrs renders the configuration for the start-up log: one attribute per setting, with
// secret fields replaced by a mask and passwords removed from URLs.
func Attrs(cfg any) []slog.Attr {
	fields, err := collect(cfg, "")
	if err != nil {
		return []slog.Attr{slog.String("config_error", err.Error())}
	}
	attrs := make([]slog.Attr, 0, len(fields))
	for _, f := range fields {
		s := format(f.value)
		if f.secret && s != "" {
			s = mask
		} else {
			s = maskURLPasswords(s)
		}
		attrs = append(attrs, slog.String(f.name, s))
	}
	return attrs
}

const mask = "********"

func collect(cfg any, prefix string) ([]field, error) {
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, errors.New("config: need a pointer to a struct")
	}
	var out []field
	var walk func(v reflect.Value) error
	walk = func(v reflect.Value) error {
		t := v.Type()
		for i := range t.NumField() {
			sf := t.Field(i)
			if !sf.IsExported() {
				continue
			}
			fv := v.Field(i)
			name, tagged := sf.Tag.Lookup("flag")
			if !tagged {
				if fv.Kind() == reflect.Struct && !isText(fv) {
					if err := walk(fv); err != nil {
						return err
					}
				}
				continue
			}
			if !supported(fv) {
				return fmt.Errorf("config: field %s has unsupported type %s", sf.Name, fv.Type())
			}
			def, hasDefault := sf.Tag.Lookup("default")
			f := field{
				name: name, help: sf.Tag.Get("help"), def: def, hasDefault: hasDefault,
				secret: sf.Tag.Get("secret") == "true", value: fv,
			}
			switch env, ok := sf.Tag.Lookup("env"); {
			case ok:
				f.env = env
			case prefix != "":
				f.env = prefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
			}
			out = append(out, f)
		}
		return nil
	}
	if err := walk(v.Elem()); err != nil {
		return nil, err
	}
	return out, nil
}

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	durationType    = reflect.TypeFor[time.Duration]()
)

func isText(v reflect.Value) bool { return v.Addr().Type().Implements(textUnmarshaler) }

func supported(v reflect.Value) bool {
	if isText(v) || v.Type() == durationType {
		return true
	}
	switch v.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int64, reflect.Float64:
		return true
	case reflect.Slice:
		return v.Type().Elem().Kind() == reflect.String
	}
	return false
}

// set parses s into v according to v's type.
func set(v reflect.Value, s string) error {
	if isText(v) {
		return v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s))
	}
	if v.Type() == durationType {
		d, err := time.ParseDuration(s)
		if err != nil {
			return errors.New("not a duration (examples: 500ms, 5s, 2m)")
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return errors.New("not a boolean (true or false)")
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return errors.New("not an integer")
		}
		v.SetInt(n)
	case reflect.Float64:
		n, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return errors.New("not a number")
		}
		v.SetFloat(n)
	case reflect.Slice:
		var items []string
		for item := range strings.SplitSeq(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		v.Set(reflect.ValueOf(items))
	}
	return nil
}

// format renders v the way set would read it back.
func format(v reflect.Value) string {
	if m, ok := v.Interface().(encoding.TextMarshaler); ok {
		b, err := m.MarshalText()
		if err != nil {
			return fmt.Sprint(v.Interface())
		}
		return string(b)
	}
	if v.Type() == durationType {
		return time.Duration(v.Int()).String()
	}
	if v.Kind() == reflect.Slice {
		return strings.Join(v.Interface().([]string), ",")
	}
	return fmt.Sprint(v.Interface())
}

// maskURLPasswords hides the password of every URL in a (possibly comma-separated) value, so a
// database URL can be logged.
func maskURLPasswords(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	parts := strings.Split(s, ",")
	for i, p := range parts {
		u, err := url.Parse(p)
		if err != nil || u.User == nil {
			continue
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

// flagValue adapts a struct field to flag.Value.
type flagValue struct{ v reflect.Value }

func (f flagValue) String() string {
	if !f.v.IsValid() {
		return ""
	}
	return format(f.v)
}

func (f flagValue) Set(s string) error { return set(f.v, s) }

// IsBoolFlag lets boolean settings be given as a bare --flag.
func (f flagValue) IsBoolFlag() bool { return f.v.IsValid() && f.v.Kind() == reflect.Bool }
