package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxFileSize bounds the configuration file and every *_file it names.
const MaxFileSize = 1 << 20

// Options changes where Load looks things up; the zero value uses the
// process environment and the file system.
type Options struct {
	// LookupEnv resolves ${VAR}; default os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// Load reads, decodes, resolves and validates the configuration at path.
// The error, if any, lists every problem found, each with its YAML path.
func Load(path string, opts Options) (*Config, error) {
	data, err := readSmallFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, filepath.Dir(path), opts)
}

// LoadForCheck is Load for reporting: when the file could be decoded it
// returns the (defaulted) configuration together with the validation error,
// so that a checker can still probe the issuers that are well formed. A
// configuration returned with an error must never be served.
func LoadForCheck(path string, opts Options) (*Config, error) {
	data, err := readSmallFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parse(data, filepath.Dir(path), opts)
}

// Parse is Load for bytes already read; relative *_file paths are resolved
// against dir.
func Parse(data []byte, dir string, opts Options) (*Config, error) {
	cfg, err := parse(data, dir, opts)
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

func parse(data []byte, dir string, opts Options) (*Config, error) {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if root.Kind == 0 {
		return nil, errors.New("config: the file is empty")
	}
	d := &decoder{lookup: opts.LookupEnv, lines: map[string]int{}, envPaths: map[string]bool{}, envRefs: map[string]bool{}}
	cfg := &Config{}
	d.decode("", &root, reflectValue(cfg))
	errs := d.errs
	cfg.lines, cfg.envPaths, cfg.envRefs = d.lines, d.envPaths, d.envRefs
	errs = append(errs, cfg.resolveFiles(dir)...)
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return cfg, &Error{Errs: withoutEchoes(flatten(errs))}
	}
	return cfg, nil
}

// withoutEchoes drops the problems that only repeat an unset environment
// variable (the value is then empty, so "required" or "plain-text secret"
// would follow at the same path): each missing variable is reported once,
// with its line.
func withoutEchoes(errs []error) []error {
	unset := map[string]bool{}
	for _, err := range errs {
		if fe, ok := err.(*FieldError); ok && strings.HasPrefix(fe.Msg, "environment variable ") && strings.HasSuffix(fe.Msg, " is not set") {
			unset[fe.Path] = true
		}
	}
	if len(unset) == 0 {
		return errs
	}
	out := errs[:0:0]
	for _, err := range errs {
		if fe, ok := err.(*FieldError); ok && unset[fe.Path] && !strings.HasPrefix(fe.Msg, "environment variable ") {
			continue
		}
		out = append(out, err)
	}
	return out
}

// Error is every problem Load found. Its message has one problem per line.
type Error struct {
	Errs []error
}

// Error lists every problem, one per line.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "config: %d problem(s):", len(e.Errs))
	for _, err := range e.Errs {
		b.WriteString("\n  ")
		b.WriteString(err.Error())
	}
	return b.String()
}

// Unwrap gives errors.Is and errors.As every problem.
func (e *Error) Unwrap() []error { return e.Errs }

func flatten(errs []error) []error {
	var out []error
	for _, err := range errs {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			out = append(out, flatten(j.Unwrap())...)
			continue
		}
		out = append(out, err)
	}
	return out
}

// resolveFiles reads every *_file field into the field it stands for.
func (c *Config) resolveFiles(dir string) []error {
	var errs []error
	read := func(path, file string, dst *string, trim bool) {
		if file == "" {
			return
		}
		if *dst != "" {
			errs = append(errs, c.fieldErr(path, "set only one of %s and %s_file", lastKey(path), lastKey(path)))
			return
		}
		if !filepath.IsAbs(file) {
			file = filepath.Join(dir, file)
		}
		b, err := readSmallFile(file)
		if err != nil {
			errs = append(errs, c.fieldErr(path+"_file", "%v", err))
			return
		}
		s := string(b)
		if trim {
			s = strings.TrimRight(s, "\r\n")
		}
		if s == "" {
			errs = append(errs, c.fieldErr(path+"_file", "file %s is empty", file))
			return
		}
		*dst = s
	}
	for i := range c.Issuers {
		if in := c.Issuers[i].Introspection; in != nil {
			read(fmt.Sprintf("issuers[%d].introspection.client_secret", i), in.ClientSecretFile, &in.ClientSecret, true)
		}
	}
	for i := range c.Routes {
		sig := c.Routes[i].Signature
		if sig == nil {
			continue
		}
		sig.FileSecrets = nil
		for j, f := range sig.SecretFiles {
			if !filepath.IsAbs(f) {
				f = filepath.Join(dir, f)
			}
			b, err := readSmallFile(f)
			s := strings.TrimRight(string(b), "\r\n")
			switch {
			case err != nil:
				errs = append(errs, c.fieldErr(fmt.Sprintf("routes[%d].signature.secret_files[%d]", i, j), "%v", err))
			case s == "":
				errs = append(errs, c.fieldErr(fmt.Sprintf("routes[%d].signature.secret_files[%d]", i, j), "file %s is empty", f))
			default:
				sig.FileSecrets = append(sig.FileSecrets, s)
			}
		}
	}
	for i := range c.Egress {
		t := &c.Egress[i].Token
		read(fmt.Sprintf("egress[%d].token.client_secret", i), t.ClientSecretFile, &t.ClientSecret, true)
	}
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	for _, p := range []*string{&c.Upstream.CAFile, &c.Upstream.CertFile, &c.Upstream.KeyFile} {
		abs(p)
	}
	if c.Redis != nil {
		abs(&c.Redis.TokenKeyFile)
	}
	if t := c.TLS; t != nil {
		for _, p := range []*string{&t.CertFile, &t.KeyFile, &t.ClientCAFile} {
			abs(p)
		}
	}
	for i := range c.Egress {
		e := &c.Egress[i]
		for _, p := range []*string{&e.Upstream.CAFile, &e.Upstream.CertFile, &e.Upstream.KeyFile, &e.Token.CAFile, &e.Token.RefreshTokenFile} {
			abs(p)
		}
		if t := e.TLS; t != nil {
			for _, p := range []*string{&t.CertFile, &t.KeyFile, &t.ClientCAFile} {
				abs(p)
			}
		}
	}
	errs = append(errs, c.clientCertAnchors(dir)...)
	if te := c.TokenEndpoint; te != nil {
		for i := range te.Clients {
			cl := &te.Clients[i]
			read(fmt.Sprintf("token_endpoint.clients[%d].client_secret_hash", i), cl.ClientSecretHashFile, &cl.ClientSecretHash, true)
			if cl.ClientSecretFile != "" && cl.ClientSecretHash != "" {
				errs = append(errs, c.fieldErr(fmt.Sprintf("token_endpoint.clients[%d].client_secret_file", i), "set only one of client_secret_hash and client_secret_file"))
			} else {
				read(fmt.Sprintf("token_endpoint.clients[%d].client_secret", i), cl.ClientSecretFile, &cl.SecretFromFile, true)
			}
		}
		for i, f := range te.SigningKeyFiles {
			if f != "" && !filepath.IsAbs(f) {
				te.SigningKeyFiles[i] = filepath.Join(dir, f)
			}
		}
	}
	return errs
}

func lastKey(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[i+1:]
	}
	return path
}

func readSmallFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, MaxFileSize)
	}
	return b, nil
}

func reflectValue(c *Config) reflect.Value { return reflect.ValueOf(c).Elem() }

// fieldErr makes a FieldError for path, with the line the YAML gave it.
func (c *Config) fieldErr(path, format string, args ...any) error {
	line := c.lines[path]
	for p := path; line == 0 && p != ""; {
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
		line = c.lines[p]
	}
	return &FieldError{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)}
}
