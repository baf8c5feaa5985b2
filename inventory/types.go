package inventory

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// SecretRef says where a secret lives; the inventory never holds the secret
// itself. Write it as {env: NAME}, {file: PATH}, or the short forms
// "env:NAME" and "file:PATH".
type SecretRef struct {
	// Environment variable holding the secret.
	Env string `yaml:"env"`
	// File holding the secret (surrounding whitespace is ignored). Relative
	// paths are relative to the inventory file.
	File string `yaml:"file"`
}

func (r *SecretRef) decodeShort(s string) error {
	kind, val, ok := strings.Cut(s, ":")
	switch {
	case ok && kind == "env" && val != "":
		r.Env = val
	case ok && kind == "file" && val != "":
		r.File = val
	default:
		return fmt.Errorf("expected {env: NAME}, {file: PATH}, \"env:NAME\" or \"file:PATH\" (secrets themselves never go in the inventory)")
	}
	return nil
}

// IsZero reports whether the reference names nothing.
func (r SecretRef) IsZero() bool { return r.Env == "" && r.File == "" }

// String describes where the secret is, never its value.
func (r SecretRef) String() string {
	switch {
	case r.Env != "":
		return "environment variable " + r.Env
	case r.File != "":
		return "file " + r.File
	}
	return "nothing"
}

// Resolve reads the secret. getenv is the caller's environment lookup (the
// CLI is the only place that reads the process environment). Errors say
// where the secret was looked for, never what it is.
func (r SecretRef) Resolve(getenv func(string) string) (Secret, error) {
	switch {
	case r.Env != "":
		v := getenv(r.Env)
		if v == "" {
			return "", fmt.Errorf("environment variable %s is not set", r.Env)
		}
		return Secret(v), nil
	case r.File != "":
		b, err := os.ReadFile(r.File)
		if err != nil {
			return "", fmt.Errorf("read secret file: %w", err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("secret file %s is empty", r.File)
		}
		return Secret(v), nil
	}
	return "", fmt.Errorf("no secret configured")
}

// Secret is a resolved secret value. Printing it, logging it (slog) or
// marshalling it to JSON shows [redacted]; Reveal gives the value to the
// one place that needs it.
type Secret string

const redacted = "[redacted]"

func (s Secret) String() string                { return redacted }
func (s Secret) GoString() string              { return redacted }
func (s Secret) MarshalText() ([]byte, error)  { return []byte(redacted), nil }
func (s Secret) Format(f fmt.State, verb rune) { fmt.Fprint(f, redacted) }
func (s Secret) Reveal() string                { return string(s) }

// Duration is a length of time written like 30d, 12h, 90s or 1h30m.
type Duration time.Duration

func (d *Duration) UnmarshalText(b []byte) error {
	s := string(b)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return fmt.Errorf("invalid duration %q (use e.g. 30d, 12h, 90m)", s)
		}
		*d = Duration(time.Duration(days) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("invalid duration %q (use e.g. 30d, 12h, 90m)", s)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Size is a number of bytes written with a decimal unit, like 40GB or 500MB
// (Scaleway sizes are decimal).
type Size int64

func (s *Size) UnmarshalText(b []byte) error {
	str := strings.TrimSpace(string(b))
	units := []struct {
		suffix string
		mult   int64
	}{{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(str, u.suffix); ok {
			v, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
			if err != nil || v <= 0 {
				break
			}
			*s = Size(v * u.mult)
			return nil
		}
	}
	return fmt.Errorf("invalid size %q (use e.g. 40GB)", str)
}

func (s Size) MarshalText() ([]byte, error) {
	switch {
	case s%1e9 == 0:
		return fmt.Appendf(nil, "%dGB", s/1e9), nil
	case s%1e6 == 0:
		return fmt.Appendf(nil, "%dMB", s/1e6), nil
	}
	return fmt.Appendf(nil, "%dB", int64(s)), nil
}

// Mode is a file mode written in octal, like 0750.
type Mode uint32

func (m *Mode) UnmarshalText(b []byte) error {
	s := strings.TrimPrefix(string(b), "0o")
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return fmt.Errorf("invalid mode %q (use octal, like 0750)", string(b))
	}
	*m = Mode(v)
	return nil
}

func (m Mode) MarshalText() ([]byte, error) { return fmt.Appendf(nil, "%04o", uint32(m)), nil }

// PortRange is a port (22) or an inclusive range (8000-8100). The zero
// value means all ports.
type PortRange struct {
	From, To int
}

func (p *PortRange) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	from, to, isRange := strings.Cut(s, "-")
	f, err1 := strconv.Atoi(strings.TrimSpace(from))
	t := f
	var err2 error
	if isRange {
		t, err2 = strconv.Atoi(strings.TrimSpace(to))
	}
	if err1 != nil || err2 != nil {
		return fmt.Errorf("invalid port %q (use a port like 22 or a range like 8000-8100)", s)
	}
	if f < 1 || f > 65535 || t < 1 || t > 65535 {
		return fmt.Errorf("port %q out of range 1-65535", s)
	}
	if t < f {
		return fmt.Errorf("port range %q ends before it starts", s)
	}
	p.From, p.To = f, t
	return nil
}

func (p PortRange) MarshalText() ([]byte, error) {
	switch {
	case p.From == 0:
		return nil, nil
	case p.From == p.To:
		return fmt.Appendf(nil, "%d", p.From), nil
	}
	return fmt.Appendf(nil, "%d-%d", p.From, p.To), nil
}

// IsZero reports whether the range means "all ports".
func (p PortRange) IsZero() bool { return p.From == 0 }

func (p PortRange) String() string {
	b, _ := p.MarshalText()
	if len(b) == 0 {
		return "all"
	}
	return string(b)
}

// LogValue keeps secrets out of slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// AuthorizedKey returns an SSH key's authorized_keys line, reading
// public_key_file (with ~ expanded to home) when the key is not inline.
func (k SSHKey) AuthorizedKey(home string) (string, error) {
	if k.PublicKey != "" {
		return strings.TrimSpace(k.PublicKey), nil
	}
	path := k.PublicKeyFile
	if rest, ok := strings.CutPrefix(path, "~/"); ok {
		path = home + "/" + rest
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read SSH key %s: %w", k.Name, err)
	}
	return strings.TrimSpace(string(b)), nil
}
