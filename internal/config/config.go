// Package config turns one YAML file plus CAMPUSID_* environment variables
// into typed settings. Unknown keys are rejected; Validate lists every
// problem at once. Packages receive values from here, never the Config.
package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as a string ("90s", "8h") in YAML.
type Duration time.Duration

func (d Duration) D() time.Duration { return time.Duration(d) }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalYAML reports a bad duration as a type error, which the decoder
// collects with the others (unknown keys...) instead of stopping at it.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: invalid duration %q (use e.g. 90s, 15m, 8h, 30d)", n.Line, n.Value)}}
	}
	*d = Duration(v)
	return nil
}

// parseDuration accepts Go durations plus a "d" suffix for days ("30d").
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (use e.g. 90s, 15m, 8h, 30d)", s)
	}
	return v, nil
}

// Config is the whole configuration. The yaml tags are the key names of the
// file and, upper-cased and joined with "_", of the environment variables.
type Config struct {
	Listen          string      `yaml:"listen" doc:"address the HTTP server listens on"`
	PublicURL       string      `yaml:"public_url" doc:"external base URL people and applications use"`
	DataDir         string      `yaml:"data_dir" doc:"directory for the SQLite database and keys"`
	DefaultLanguage string      `yaml:"default_language" doc:"fr or en; used when the browser asks for neither"`
	TrustedProxies  []string    `yaml:"trusted_proxies" doc:"CIDRs of reverse proxies whose X-Forwarded-For/-Proto are believed"`
	Database        Database    `yaml:"database"`
	Log             Log         `yaml:"log"`
	Support         Support     `yaml:"support"`
	Password        Password    `yaml:"password"`
	Session         Session     `yaml:"session"`
	Login           Login       `yaml:"login"`
	Mail            Mail        `yaml:"mail"`
	SelfService     SelfService `yaml:"self_service"`
	OIDC            OIDC        `yaml:"oidc"`
	Keys            SigningKeys `yaml:"keys"`
	Delivery        Delivery    `yaml:"delivery"`
	CAS             CAS         `yaml:"cas"`
}

// CAS holds the settings of the CAS server (docs/cas.md).
type CAS struct {
	TicketLifetime Duration     `yaml:"ticket_lifetime" doc:"how long a service ticket may wait for its validation (single use in any case)"`
	EPPNScope      string       `yaml:"eppn_scope" doc:"domain of the eduPersonPrincipalName attribute (identifier@scope); empty: the host of public_url"`
	Services       []CASService `yaml:"services" doc:"CAS services declared in the file (a YAML list, see docs/cas.md), upserted at start; the variable takes the same list in YAML flow syntax"`
	ProxyCAFile    string       `yaml:"proxy_ca_file" doc:"PEM file of certificate authorities trusted, beside the system's, for the HTTPS proxy callbacks (pgtUrl) of CAS services"`
}

// CASService is a CAS service declared in the configuration file.
type CASService struct {
	ID         string   `yaml:"id"`
	Name       string   `yaml:"name"`
	URL        string   `yaml:"url"`
	Match      string   `yaml:"match"`
	Attributes []string `yaml:"attributes"`
	Proxy      bool     `yaml:"proxy"`
	LogoutURL  string   `yaml:"logout_url"`
	Order      int      `yaml:"order"`
}

// OIDC holds the settings of the OpenID Connect provider (docs/oidc.md).
type OIDC struct {
	AccessTokenLifetime  Duration     `yaml:"access_token_lifetime" doc:"lifetime of an access token"`
	IDTokenLifetime      Duration     `yaml:"id_token_lifetime" doc:"lifetime of an ID token"`
	RefreshTokenLifetime Duration     `yaml:"refresh_token_lifetime" doc:"a refresh token unused this long expires; each use gives a new one"`
	AuthRequestLifetime  Duration     `yaml:"auth_request_lifetime" doc:"how long a sign-in started by an application may take"`
	DeviceCodeLifetime   Duration     `yaml:"device_code_lifetime" doc:"device flow: how long a user code may be typed at /device and the device may poll"`
	DevicePollInterval   Duration     `yaml:"device_poll_interval" doc:"device flow: the least time between two polls of the token endpoint (slow_down when faster)"`
	Clients              []OIDCClient `yaml:"clients" doc:"applications declared in the file (a YAML list, see docs/oidc.md), upserted at start; the variable takes the same list in YAML flow syntax"`
}

// OIDCClient is an application declared in the configuration file.
type OIDCClient struct {
	ID                   string   `yaml:"id"`
	Name                 string   `yaml:"name"`
	Public               bool     `yaml:"public"`
	FirstParty           bool     `yaml:"first_party"`
	SecretFile           string   `yaml:"secret_file"`
	SecretSHA256         string   `yaml:"secret_sha256"`
	RedirectURIs         []string `yaml:"redirect_uris"`
	PostLogoutURIs       []string `yaml:"post_logout_uris"`
	BackchannelLogoutURI string   `yaml:"backchannel_logout_uri"`
	Grants               []string `yaml:"grants"`
	Scopes               []string `yaml:"scopes"`
}

// Secret returns the client's secret from secret_file ("" when none).
func (c OIDCClient) Secret() (string, error) {
	if c.SecretFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(c.SecretFile)
	if err != nil {
		return "", fmt.Errorf("config: oidc.clients %s: secret_file: %w", c.ID, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Delivery holds the settings of the back-channel delivery worker
// (internal/delivery): OpenID Connect back-channel logout tokens.
type Delivery struct {
	PollPeriod Duration `yaml:"poll_period" doc:"how often the worker looks for due back-channel messages (it also wakes after each POST)"`
	Timeout    Duration `yaml:"timeout" doc:"how long one POST to an application may take"`
	RetryBase  Duration `yaml:"retry_base" doc:"first retry delay after a temporary failure; doubles each attempt"`
	RetryMax   Duration `yaml:"retry_max" doc:"longest delay between two attempts"`
	MaxAge     Duration `yaml:"max_age" doc:"give up on a message still undelivered after this long"`
}

// SigningKeys holds the settings of the token-signing keys.
type SigningKeys struct {
	Algorithm         string `yaml:"algorithm" doc:"ES256 or RS256: algorithm of new signing keys"`
	EncryptionKey     string `yaml:"encryption_key" doc:"base64 of 32 random bytes that encrypt the signing keys in the database (prefer encryption_key_file or the environment); the same on every node"`
	EncryptionKeyFile string `yaml:"encryption_key_file" doc:"file holding encryption_key; when neither is set, data_dir/encryption.key is generated"`
}

// SelfService holds the settings of activation, codes, links and recovery.
type SelfService struct {
	LoginCode                bool     `yaml:"login_code" doc:"offer 'email me a code' on the password step"`
	LoginLink                bool     `yaml:"login_link" doc:"offer 'email me a sign-in link' on the password step"`
	CodeValidity             Duration `yaml:"code_validity" doc:"lifetime of a one-time code (sign-in, reset, address check)"`
	CodeMaxTries             int      `yaml:"code_max_tries" doc:"wrong tries after which a code is dead"`
	LoginLinkValidity        Duration `yaml:"login_link_validity" doc:"lifetime of a sign-in link"`
	ActivationLinkValidity   Duration `yaml:"activation_link_validity" doc:"lifetime of an activation link"`
	ResetLinkValidity        Duration `yaml:"reset_link_validity" doc:"lifetime of a password reset link"`
	VerifyLinkValidity       Duration `yaml:"verify_link_validity" doc:"lifetime of an address verification link"`
	ResendInterval           Duration `yaml:"resend_interval" doc:"at most one message per purpose and account in this time"`
	SendsPerClient           int      `yaml:"sends_per_client" doc:"messages one client address may trigger per send_window before delays"`
	SendWindow               Duration `yaml:"send_window" doc:"window of sends_per_client"`
	RevealUnknownAccounts    bool     `yaml:"reveal_unknown_accounts" doc:"say 'no account uses this address' on the recovery and who-am-I pages"`
	ActivationSecretQuestion bool     `yaml:"activation_secret_question" doc:"activation asks for a secret question and its answer"`
	ActivationPersonalEmail  bool     `yaml:"activation_personal_email" doc:"activation asks for a personal address, verified by a code"`
	QuestionMaxFailures      int      `yaml:"question_max_failures" doc:"wrong answers that lock recovery by secret question"`
	QuestionLock             Duration `yaml:"question_lock" doc:"how long recovery by secret question stays locked"`
	NotifyNewDevice          bool     `yaml:"notify_new_device" doc:"email the account when it signs in from a new device"`
}

type Database struct {
	URL          string `yaml:"url" doc:"sqlite:PATH or postgres://..."`
	MaxOpenConns int    `yaml:"max_open_conns" doc:"connection pool size"`
}

type Log struct {
	Level  string `yaml:"level" doc:"debug, info, warn or error"`
	Format string `yaml:"format" doc:"text or json"`
}

type Support struct {
	Email string `yaml:"email" doc:"support address shown to people who need help"`
	URL   string `yaml:"url" doc:"support web page shown to people who need help"`
}

type Password struct {
	Preset    string `yaml:"preset" doc:"seed or nist"`
	MinLength int    `yaml:"min_length" doc:"0 = the preset's minimum"`
	MaxLength int    `yaml:"max_length" doc:"0 = the preset's maximum"`
	Hash      Hash   `yaml:"hash"`
}

type Hash struct {
	MemoryKiB     uint32   `yaml:"memory_kib" doc:"argon2id memory in KiB"`
	Iterations    uint32   `yaml:"iterations" doc:"argon2id passes"`
	Parallelism   uint8    `yaml:"parallelism" doc:"argon2id lanes"`
	MaxConcurrent int      `yaml:"max_concurrent" doc:"hashes computed at once; 0 = number of CPUs"`
	MaxWait       Duration `yaml:"max_wait" doc:"how long a request waits for a hashing slot before a 503"`
}

type Session struct {
	IdleTimeout     Duration `yaml:"idle_timeout" doc:"a session without remember-me ends after this long unused"`
	AbsoluteTimeout Duration `yaml:"absolute_timeout" doc:"a session without remember-me ends after this long in any case"`
	RememberFor     Duration `yaml:"remember_for" doc:"lifetime of a remember-me session"`
}

type Login struct {
	RevealUnknownAccounts bool     `yaml:"reveal_unknown_accounts" doc:"say 'no account with this address' at sign-in; false asks for a password anyway"`
	FlowLifetime          Duration `yaml:"flow_lifetime" doc:"how long a sign-in page stays valid"`
	AccountFreeFailures   int      `yaml:"account_free_failures" doc:"failed passwords per account before delays start"`
	AccountMaxDelay       Duration `yaml:"account_max_delay" doc:"longest wait imposed on an account between tries"`
	ClientFreeFailures    int      `yaml:"client_free_failures" doc:"failed passwords per client address before delays start"`
	ClientMaxDelay        Duration `yaml:"client_max_delay" doc:"longest wait imposed on a client address between tries"`
	FailureWindow         Duration `yaml:"failure_window" doc:"failures older than this are forgotten"`
	MinFailureTime        Duration `yaml:"min_failure_time" doc:"a failed sign-in answers no faster than this (timing equality)"`
}

type Mail struct {
	Driver     string   `yaml:"driver" doc:"dev (development mailbox at /dev/mail) or smtp; default: smtp when mail.smtp.host is set, else dev"`
	From       string   `yaml:"from" doc:"sender address"`
	MaxAge     Duration `yaml:"max_age" doc:"give up on a message still undelivered after this long"`
	RetryBase  Duration `yaml:"retry_base" doc:"first retry delay; doubles each attempt"`
	RetryMax   Duration `yaml:"retry_max" doc:"longest delay between two attempts"`
	PollPeriod Duration `yaml:"poll_period" doc:"how often the worker looks for due messages"`
	SMTP       SMTP     `yaml:"smtp"`
}

type SMTP struct {
	Host         string `yaml:"host" doc:"SMTP relay host"`
	Port         int    `yaml:"port" doc:"587 for starttls, 465 for tls"`
	Security     string `yaml:"security" doc:"starttls, tls or none"`
	Username     string `yaml:"username" doc:"AUTH user; empty = no authentication"`
	Password     string `yaml:"password" doc:"AUTH password (prefer password_file or the environment)"`
	PasswordFile string `yaml:"password_file" doc:"file holding the AUTH password"`
	HeloName     string `yaml:"helo_name" doc:"name sent in EHLO"`
}

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		Listen:          "localhost:8080",
		PublicURL:       "http://localhost:8080",
		DataDir:         "./campusid-data",
		DefaultLanguage: "fr",
		Database:        Database{MaxOpenConns: 10},
		Log:             Log{Level: "info", Format: "text"},
		Password: Password{
			Preset: "seed",
			Hash: Hash{MemoryKiB: 19456, Iterations: 2, Parallelism: 1,
				MaxWait: Duration(3 * time.Second)},
		},
		Session: Session{
			IdleTimeout:     Duration(8 * time.Hour),
			AbsoluteTimeout: Duration(24 * time.Hour),
			RememberFor:     Duration(30 * 24 * time.Hour),
		},
		Login: Login{
			RevealUnknownAccounts: true,
			FlowLifetime:          Duration(30 * time.Minute),
			AccountFreeFailures:   5,
			AccountMaxDelay:       Duration(30 * time.Second),
			ClientFreeFailures:    20,
			ClientMaxDelay:        Duration(5 * time.Minute),
			FailureWindow:         Duration(15 * time.Minute),
			MinFailureTime:        Duration(300 * time.Millisecond),
		},
		Mail: Mail{
			From:       "campusid <noreply@localhost>",
			MaxAge:     Duration(48 * time.Hour),
			RetryBase:  Duration(30 * time.Second),
			RetryMax:   Duration(30 * time.Minute),
			PollPeriod: Duration(2 * time.Second),
			SMTP:       SMTP{Port: 587, Security: "starttls", HeloName: "localhost"},
		},
		OIDC: OIDC{
			AccessTokenLifetime: Duration(time.Hour), IDTokenLifetime: Duration(time.Hour),
			RefreshTokenLifetime: Duration(30 * 24 * time.Hour), AuthRequestLifetime: Duration(30 * time.Minute),
			DeviceCodeLifetime: Duration(10 * time.Minute), DevicePollInterval: Duration(5 * time.Second),
		},
		Keys: SigningKeys{Algorithm: "ES256"},
		CAS:  CAS{TicketLifetime: Duration(10 * time.Second)},
		Delivery: Delivery{PollPeriod: Duration(5 * time.Second), Timeout: Duration(10 * time.Second),
			RetryBase: Duration(10 * time.Second), RetryMax: Duration(30 * time.Minute), MaxAge: Duration(24 * time.Hour)},
		SelfService: SelfService{
			LoginCode: true, CodeValidity: Duration(3 * time.Minute), CodeMaxTries: 5,
			LoginLinkValidity: Duration(24 * time.Hour), ActivationLinkValidity: Duration(24 * time.Hour),
			ResetLinkValidity: Duration(time.Hour), VerifyLinkValidity: Duration(24 * time.Hour),
			ResendInterval: Duration(time.Minute), SendsPerClient: 20, SendWindow: Duration(time.Hour),
			QuestionMaxFailures: 5, QuestionLock: Duration(time.Hour), NotifyNewDevice: true,
		},
	}
}

// Load reads the file at path (none when path is ""), then applies the
// environment. It does not validate: call Validate. After a bad value in
// the file or the environment it still returns what it could read, so
// Validate can add its own problems to the list.
func Load(path string, environ []string) (Config, error) {
	c := Default()
	var errs []error
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) { // io.EOF: empty file
			errs = append(errs, fmt.Errorf("config: %s: %w", path, err))
		}
	}
	if err := applyEnv(&c, environ); err != nil {
		errs = append(errs, err)
	}
	c.fillDerived()
	return c, errors.Join(errs...)
}

func (c *Config) fillDerived() {
	if c.Database.URL == "" {
		c.Database.URL = "sqlite:" + filepath.Join(c.DataDir, "campusid.db")
	}
	if c.Mail.Driver == "" {
		if c.Mail.SMTP.Host != "" {
			c.Mail.Driver = "smtp"
		} else {
			c.Mail.Driver = "dev"
		}
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
}

// SMTPPassword returns the password from password_file when set.
func (s SMTP) SMTPPassword() (string, error) {
	if s.PasswordFile == "" {
		return s.Password, nil
	}
	b, err := os.ReadFile(s.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("config: mail.smtp.password_file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// EnvName is the environment variable that overrides a key path.
func EnvName(path string) string {
	return "CAMPUSID_" + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// Keys lists every key with its default value and documentation, in order.
type Key struct {
	Path, Doc string
	Default   string
}

func Keys() []Key {
	var keys []Key
	d := Default()
	walk(reflect.ValueOf(&d).Elem(), "", func(path string, v reflect.Value, f reflect.StructField) {
		keys = append(keys, Key{Path: path, Doc: f.Tag.Get("doc"), Default: formatValue(v)})
	})
	return keys
}

func walk(v reflect.Value, prefix string, fn func(path string, v reflect.Value, f reflect.StructField)) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("yaml")
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct && f.Type != reflect.TypeOf(Duration(0)) {
			walk(fv, path, fn)
			continue
		}
		fn(path, fv, f)
	}
}

func formatValue(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case Duration:
		return x.D().String()
	case []string:
		return strings.Join(x, ",")
	case []OIDCClient:
		if len(x) == 0 {
			return "(none)"
		}
		ids := make([]string, len(x))
		for i, c := range x {
			ids[i] = c.ID
		}
		return strings.Join(ids, ",")
	case []CASService:
		if len(x) == 0 {
			return "(none)"
		}
		ids := make([]string, len(x))
		for i, c := range x {
			ids[i] = c.ID
		}
		return strings.Join(ids, ",")
	default:
		return fmt.Sprint(x)
	}
}

func applyEnv(c *Config, environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "CAMPUSID_") {
			env[k] = v
		}
	}
	var errs []error
	walk(reflect.ValueOf(c).Elem(), "", func(path string, v reflect.Value, _ reflect.StructField) {
		name := EnvName(path)
		s, ok := env[name]
		if !ok {
			return
		}
		if err := setValue(v, s); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	})
	return errors.Join(errs...)
}

func setValue(v reflect.Value, s string) error {
	switch v.Addr().Interface().(type) {
	case *Duration:
		d, err := parseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	case *[]string:
		var list []string
		for p := range strings.SplitSeq(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				list = append(list, p)
			}
		}
		v.Set(reflect.ValueOf(list))
		return nil
	case *[]OIDCClient:
		// A YAML (or JSON) list: [{id: app, name: App, redirect_uris: [...]}]
		var list []OIDCClient
		dec := yaml.NewDecoder(strings.NewReader(s))
		dec.KnownFields(true)
		if err := dec.Decode(&list); err != nil {
			return fmt.Errorf("want a YAML list of applications: %w", err)
		}
		v.Set(reflect.ValueOf(list))
		return nil
	case *[]CASService:
		var list []CASService
		dec := yaml.NewDecoder(strings.NewReader(s))
		dec.KnownFields(true)
		if err := dec.Decode(&list); err != nil {
			return fmt.Errorf("want a YAML list of CAS services: %w", err)
		}
		v.Set(reflect.ValueOf(list))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", s)
		}
		v.SetBool(b)
	case reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("want a whole number, got %q", s)
		}
		v.SetInt(int64(n))
	case reflect.Uint8, reflect.Uint32:
		n, err := strconv.ParseUint(s, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("want a positive whole number, got %q", s)
		}
		v.SetUint(n)
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}

// Validate returns every problem found, joined; nil when the configuration is usable.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "want host:port, got %q", c.Listen)
	}
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("public_url", "want an absolute http:// or https:// URL, got %q", c.PublicURL)
	} else if u.RawQuery != "" || u.Fragment != "" {
		bad("public_url", "must not have a query or fragment")
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	if c.DefaultLanguage != "fr" && c.DefaultLanguage != "en" {
		bad("default_language", "want fr or en, got %q", c.DefaultLanguage)
	}
	for _, p := range c.TrustedProxies {
		if _, _, err := net.ParseCIDR(p); err != nil {
			if net.ParseIP(p) == nil {
				bad("trusted_proxies", "%q is neither an IP address nor a CIDR", p)
			}
		}
	}
	if !strings.HasPrefix(c.Database.URL, "sqlite:") && !strings.HasPrefix(c.Database.URL, "postgres://") && !strings.HasPrefix(c.Database.URL, "postgresql://") {
		bad("database.url", "want sqlite:PATH or postgres://..., got %q", redactURL(c.Database.URL))
	}
	if c.Database.MaxOpenConns < 1 {
		bad("database.max_open_conns", "must be at least 1")
	}
	if c.Log.Level != "debug" && c.Log.Level != "info" && c.Log.Level != "warn" && c.Log.Level != "error" {
		bad("log.level", "want debug, info, warn or error, got %q", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", "want text or json, got %q", c.Log.Format)
	}
	if c.Support.Email != "" {
		if _, err := mail.ParseAddress(c.Support.Email); err != nil {
			bad("support.email", "not an email address: %q", c.Support.Email)
		}
	}
	if c.Password.Preset != "seed" && c.Password.Preset != "nist" {
		bad("password.preset", "want seed or nist, got %q", c.Password.Preset)
	}
	if c.Password.MinLength < 0 || c.Password.MaxLength < 0 || (c.Password.MaxLength > 0 && c.Password.MinLength > c.Password.MaxLength) {
		bad("password.min_length", "lengths must be positive and min_length <= max_length")
	}
	h := c.Password.Hash
	if h.Iterations < 1 || h.Parallelism < 1 || h.MemoryKiB < 8*uint32(max(h.Parallelism, 1)) {
		bad("password.hash", "argon2id needs iterations >= 1, parallelism >= 1 and memory_kib >= 8*parallelism")
	}
	if h.MaxConcurrent < 0 {
		bad("password.hash.max_concurrent", "must not be negative")
	}
	positive := map[string]Duration{
		"password.hash.max_wait": h.MaxWait, "session.idle_timeout": c.Session.IdleTimeout,
		"session.absolute_timeout": c.Session.AbsoluteTimeout, "session.remember_for": c.Session.RememberFor,
		"login.flow_lifetime": c.Login.FlowLifetime, "login.failure_window": c.Login.FailureWindow,
		"login.account_max_delay": c.Login.AccountMaxDelay, "login.client_max_delay": c.Login.ClientMaxDelay,
		"mail.max_age": c.Mail.MaxAge, "mail.retry_base": c.Mail.RetryBase, "mail.retry_max": c.Mail.RetryMax,
		"mail.poll_period": c.Mail.PollPeriod, "self_service.code_validity": c.SelfService.CodeValidity,
		"self_service.login_link_validity": c.SelfService.LoginLinkValidity, "self_service.activation_link_validity": c.SelfService.ActivationLinkValidity,
		"self_service.reset_link_validity": c.SelfService.ResetLinkValidity, "self_service.verify_link_validity": c.SelfService.VerifyLinkValidity,
		"self_service.resend_interval": c.SelfService.ResendInterval, "self_service.send_window": c.SelfService.SendWindow,
		"self_service.question_lock": c.SelfService.QuestionLock,
		"oidc.access_token_lifetime": c.OIDC.AccessTokenLifetime, "oidc.id_token_lifetime": c.OIDC.IDTokenLifetime,
		"oidc.refresh_token_lifetime": c.OIDC.RefreshTokenLifetime, "oidc.auth_request_lifetime": c.OIDC.AuthRequestLifetime,
		"oidc.device_code_lifetime": c.OIDC.DeviceCodeLifetime, "oidc.device_poll_interval": c.OIDC.DevicePollInterval,
		"delivery.poll_period": c.Delivery.PollPeriod, "delivery.timeout": c.Delivery.Timeout,
		"delivery.retry_base": c.Delivery.RetryBase, "delivery.retry_max": c.Delivery.RetryMax, "delivery.max_age": c.Delivery.MaxAge,
		"cas.ticket_lifetime": c.CAS.TicketLifetime,
	}
	for _, k := range slices.Sorted(maps.Keys(positive)) {
		if positive[k] <= 0 {
			bad(k, "must be a positive duration")
		}
	}
	if p := c.OIDC.DevicePollInterval.D(); p > 0 && p%time.Second != 0 {
		bad("oidc.device_poll_interval", "want whole seconds (the device flow's interval is in seconds), got %s", p)
	}
	if c.Login.AccountFreeFailures < 1 || c.Login.ClientFreeFailures < 1 {
		bad("login.account_free_failures", "free failure counts must be at least 1")
	}
	if c.SelfService.CodeMaxTries < 1 || c.SelfService.QuestionMaxFailures < 1 || c.SelfService.SendsPerClient < 1 {
		bad("self_service", "code_max_tries, question_max_failures and sends_per_client must be at least 1")
	}
	if _, err := mail.ParseAddress(c.Mail.From); err != nil {
		bad("mail.from", "not an email address: %q", c.Mail.From)
	}
	if a := c.Keys.Algorithm; a != "ES256" && a != "RS256" {
		bad("keys.algorithm", "want ES256 or RS256, got %q", a)
	}
	if c.Keys.EncryptionKey != "" && c.Keys.EncryptionKeyFile != "" {
		bad("keys.encryption_key_file", "set encryption_key or encryption_key_file, not both")
	}
	if c.Keys.EncryptionKey != "" && !validSecret(c.Keys.EncryptionKey) {
		bad("keys.encryption_key", "want the base64 of 32 random bytes (openssl rand -base64 32)")
	}
	if f := c.Keys.EncryptionKeyFile; f != "" {
		if b, err := os.ReadFile(f); err != nil {
			bad("keys.encryption_key_file", "%v", err)
		} else if !validSecret(string(b)) {
			bad("keys.encryption_key_file", "%s does not hold the base64 of 32 random bytes (openssl rand -base64 32)", f)
		}
	}
	seen := map[string]bool{}
	for i, cl := range c.OIDC.Clients {
		key := fmt.Sprintf("oidc.clients[%d]", i)
		if cl.ID == "" {
			bad(key+".id", "must not be empty")
		} else if seen[cl.ID] {
			bad(key+".id", "%q is declared twice", cl.ID)
		}
		seen[cl.ID] = true
		if cl.Name == "" {
			bad(key+".name", "must not be empty")
		}
		if len(cl.RedirectURIs) == 0 && !slices.Contains(cl.Grants, "client_credentials") {
			bad(key+".redirect_uris", "at least one redirect URI is needed")
		}
		switch {
		case cl.Public && (cl.SecretFile != "" || cl.SecretSHA256 != ""):
			bad(key, "a public client has no secret: drop secret_file and secret_sha256")
		case !cl.Public && cl.SecretFile == "" && cl.SecretSHA256 == "":
			bad(key, "a confidential client needs secret_file or secret_sha256 (or set public: true)")
		case cl.SecretFile != "" && cl.SecretSHA256 != "":
			bad(key, "set secret_file or secret_sha256, not both")
		}
		if s, err := cl.Secret(); err != nil {
			bad(key+".secret_file", "%v", errors.Unwrap(err))
		} else if cl.SecretFile != "" && len(s) < 32 {
			bad(key+".secret_file", "the secret must be at least 32 characters (openssl rand -base64 32)")
		}
		if h := cl.SecretSHA256; h != "" && (len(h) != 64 || strings.Trim(strings.ToLower(h), "0123456789abcdef") != "") {
			bad(key+".secret_sha256", "want the 64 hex digits of a SHA-256")
		}
	}
	switch c.Mail.Driver {
	case "dev":
	case "smtp":
		if c.Mail.SMTP.Host == "" {
			bad("mail.smtp.host", "required when mail.driver is smtp")
		}
		if c.Mail.SMTP.Port < 1 || c.Mail.SMTP.Port > 65535 {
			bad("mail.smtp.port", "want 1-65535, got %d", c.Mail.SMTP.Port)
		}
		if s := c.Mail.SMTP.Security; s != "starttls" && s != "tls" && s != "none" {
			bad("mail.smtp.security", "want starttls, tls or none, got %q", s)
		}
		if c.Mail.SMTP.Password != "" && c.Mail.SMTP.PasswordFile != "" {
			bad("mail.smtp.password_file", "set password or password_file, not both")
		}
		if _, err := c.Mail.SMTP.SMTPPassword(); err != nil {
			bad("mail.smtp.password_file", "%v", errors.Unwrap(err))
		}
	default:
		bad("mail.driver", "want dev or smtp, got %q", c.Mail.Driver)
	}
	return errors.Join(errs...)
}

// validSecret reports whether s is the base64 of 32 bytes.
func validSecret(s string) bool {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return len(b) == 32
		}
	}
	return false
}

// Secure reports whether the public URL is HTTPS (cookies get Secure and __Host-).
func (c Config) Secure() bool { return strings.HasPrefix(c.PublicURL, "https://") }

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}
