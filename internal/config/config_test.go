package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// writeFile writes a configuration file in a fresh directory and returns its path.
func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "campusid.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadFile(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		check   func(t *testing.T, c Config)
		wantErr []string // substrings of the error; nil = no error
	}{
		{
			name: "yaml values of every kind",
			body: `
listen: 0.0.0.0:9000
public_url: https://id.univ.example/
trusted_proxies: [10.0.0.0/8, 192.0.2.1]
database:
  url: postgres://campusid@db/campusid
  max_open_conns: 25
login:
  reveal_unknown_accounts: false
session:
  remember_for: 14d
  idle_timeout: 90m
password:
  hash:
    memory_kib: 65536
    parallelism: 2
`,
			check: func(t *testing.T, c Config) {
				want := map[string]any{
					"listen":          "0.0.0.0:9000",
					"public_url":      "https://id.univ.example", // trailing slash trimmed
					"trusted_proxies": []string{"10.0.0.0/8", "192.0.2.1"},
					"database.url":    "postgres://campusid@db/campusid",
					"max_open_conns":  25,
					"reveal_unknown":  false,
					"remember_for":    14 * 24 * time.Hour,
					"idle_timeout":    90 * time.Minute,
					"memory_kib":      uint32(65536),
					"parallelism":     uint8(2),
					"iterations":      uint32(2), // untouched: the default
				}
				got := map[string]any{
					"listen": c.Listen, "public_url": c.PublicURL, "trusted_proxies": c.TrustedProxies,
					"database.url": c.Database.URL, "max_open_conns": c.Database.MaxOpenConns,
					"reveal_unknown": c.Login.RevealUnknownAccounts, "remember_for": c.Session.RememberFor.D(),
					"idle_timeout": c.Session.IdleTimeout.D(), "memory_kib": c.Password.Hash.MemoryKiB,
					"parallelism": c.Password.Hash.Parallelism, "iterations": c.Password.Hash.Iterations,
				}
				for k, w := range want {
					if !reflect.DeepEqual(got[k], w) {
						t.Errorf("%s = %#v, want %#v", k, got[k], w)
					}
				}
			},
		},
		{
			name: "empty file gives the defaults",
			body: "",
			check: func(t *testing.T, c Config) {
				if c.Listen != "localhost:8080" || c.PublicURL != "http://localhost:8080" || c.DataDir != "./campusid-data" {
					t.Errorf("defaults not kept: listen %q public_url %q data_dir %q", c.Listen, c.PublicURL, c.DataDir)
				}
				if err := c.Validate(); err != nil {
					t.Errorf("defaults do not validate: %v", err)
				}
			},
		},
		{
			name: "comments only",
			body: "# nothing set yet\n",
			check: func(t *testing.T, c Config) {
				if c.Listen != "localhost:8080" {
					t.Errorf("listen = %q", c.Listen)
				}
			},
		},
		{name: "unknown top-level key", body: "listen: localhost:1\nlisten_port: 8080\n", wantErr: []string{"listen_port"}},
		{name: "unknown nested key", body: "database:\n  uri: sqlite:x.db\n", wantErr: []string{"uri"}},
		{name: "misspelled section", body: "sesion:\n  idle_timeout: 1h\n", wantErr: []string{"sesion"}},
		{name: "bad duration", body: "session:\n  idle_timeout: eight hours\n", wantErr: []string{"eight hours"}},
		{name: "text for a number", body: "database:\n  max_open_conns: many\n", wantErr: []string{"many"}},
		{name: "not yaml", body: "listen: [unclosed\n", wantErr: []string{"campusid.yaml"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(writeFile(t, tc.body), nil)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				tc.check(t, c)
				return
			}
			if err == nil {
				t.Fatal("Load accepted the file")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Load(p, nil)
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("Load of a missing file: %v", err)
	}
}

// TestLoadFileListsEveryProblem: an operator fixing a file sees all its
// mistakes at once, not one per run.
func TestLoadFileListsEveryProblem(t *testing.T) {
	body := `
listen_port: 8080
session:
  idle_timeout: 8 hours
  remember_for: 30 days
database:
  max_open_conns: lots
  urll: sqlite:x.db
`
	_, err := Load(writeFile(t, body), nil)
	if err == nil {
		t.Fatal("Load accepted the file")
	}
	for _, w := range []string{"listen_port", "8 hours", "30 days", "lots", "urll"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not mention %q:\n%v", w, err)
		}
	}
}

func TestEnvOverrides(t *testing.T) {
	tests := []struct {
		name  string
		env   []string
		file  string
		check func(c Config) (got, want any)
	}{
		{"string", []string{"CAMPUSID_DATABASE_URL=postgres://u@h/db"}, "",
			func(c Config) (any, any) { return c.Database.URL, "postgres://u@h/db" }},
		{"string nested three deep", []string{"CAMPUSID_MAIL_SMTP_HELO_NAME=mx.univ.example"}, "",
			func(c Config) (any, any) { return c.Mail.SMTP.HeloName, "mx.univ.example" }},
		{"int", []string{"CAMPUSID_DATABASE_MAX_OPEN_CONNS=42"}, "",
			func(c Config) (any, any) { return c.Database.MaxOpenConns, 42 }},
		{"uint32", []string{"CAMPUSID_PASSWORD_HASH_MEMORY_KIB=64"}, "",
			func(c Config) (any, any) { return c.Password.Hash.MemoryKiB, uint32(64) }},
		{"uint8", []string{"CAMPUSID_PASSWORD_HASH_PARALLELISM=4"}, "",
			func(c Config) (any, any) { return c.Password.Hash.Parallelism, uint8(4) }},
		{"bool false", []string{"CAMPUSID_LOGIN_REVEAL_UNKNOWN_ACCOUNTS=false"}, "",
			func(c Config) (any, any) { return c.Login.RevealUnknownAccounts, false }},
		{"bool true over file", []string{"CAMPUSID_LOGIN_REVEAL_UNKNOWN_ACCOUNTS=true"}, "login:\n  reveal_unknown_accounts: false\n",
			func(c Config) (any, any) { return c.Login.RevealUnknownAccounts, true }},
		{"duration in days", []string{"CAMPUSID_SESSION_REMEMBER_FOR=30d"}, "",
			func(c Config) (any, any) { return c.Session.RememberFor.D(), 30 * 24 * time.Hour }},
		{"duration Go syntax", []string{"CAMPUSID_LOGIN_FLOW_LIFETIME=1h30m"}, "",
			func(c Config) (any, any) { return c.Login.FlowLifetime.D(), 90 * time.Minute }},
		{"list, spaces and empty items dropped", []string{"CAMPUSID_TRUSTED_PROXIES= 10.0.0.0/8 ,,192.0.2.1 "}, "",
			func(c Config) (any, any) { return c.TrustedProxies, []string{"10.0.0.0/8", "192.0.2.1"} }},
		{"environment beats file", []string{"CAMPUSID_LISTEN=127.0.0.1:1"}, "listen: 127.0.0.1:2\n",
			func(c Config) (any, any) { return c.Listen, "127.0.0.1:1" }},
		{"file kept without variable", nil, "listen: 127.0.0.1:2\n",
			func(c Config) (any, any) { return c.Listen, "127.0.0.1:2" }},
		{"other variables ignored", []string{"PATH=/bin", "CAMPUSIDX_LISTEN=x", "CAMPUSID_LISTEN"}, "",
			func(c Config) (any, any) { return c.Listen, "localhost:8080" }},
		{"last value of a repeated variable wins", []string{"CAMPUSID_LISTEN=a:1", "CAMPUSID_LISTEN=b:2"}, "",
			func(c Config) (any, any) { return c.Listen, "b:2" }},
		{"value containing =", []string{"CAMPUSID_DATABASE_URL=postgres://h/db?sslmode=disable"}, "",
			func(c Config) (any, any) { return c.Database.URL, "postgres://h/db?sslmode=disable" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = writeFile(t, tc.file)
			}
			c, err := Load(path, tc.env)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got, want := tc.check(c); !reflect.DeepEqual(got, want) {
				t.Errorf("got %#v, want %#v", got, want)
			}
		})
	}
}

func TestEnvBadValues(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want []string // each must appear in the error
	}{
		{"int", []string{"CAMPUSID_DATABASE_MAX_OPEN_CONNS=ten"}, []string{"CAMPUSID_DATABASE_MAX_OPEN_CONNS", `"ten"`}},
		{"bool", []string{"CAMPUSID_LOGIN_REVEAL_UNKNOWN_ACCOUNTS=yes please"}, []string{"CAMPUSID_LOGIN_REVEAL_UNKNOWN_ACCOUNTS", "yes please"}},
		{"duration", []string{"CAMPUSID_SESSION_IDLE_TIMEOUT=8 hours"}, []string{"CAMPUSID_SESSION_IDLE_TIMEOUT", "8 hours"}},
		{"days not whole", []string{"CAMPUSID_SESSION_REMEMBER_FOR=1.5d"}, []string{"CAMPUSID_SESSION_REMEMBER_FOR", "1.5d"}},
		{"negative unsigned", []string{"CAMPUSID_PASSWORD_HASH_ITERATIONS=-1"}, []string{"CAMPUSID_PASSWORD_HASH_ITERATIONS", "-1"}},
		{"uint8 overflow", []string{"CAMPUSID_PASSWORD_HASH_PARALLELISM=300"}, []string{"CAMPUSID_PASSWORD_HASH_PARALLELISM", "300"}},
		{"several at once", []string{"CAMPUSID_DATABASE_MAX_OPEN_CONNS=x", "CAMPUSID_MAIL_RETRY_BASE=soon", "CAMPUSID_LOGIN_ACCOUNT_FREE_FAILURES=2.5"},
			[]string{"CAMPUSID_DATABASE_MAX_OPEN_CONNS", "CAMPUSID_MAIL_RETRY_BASE", "CAMPUSID_LOGIN_ACCOUNT_FREE_FAILURES"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("", tc.env)
			if err == nil {
				t.Fatal("Load accepted the environment")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		want   []string // keys named in the error; nil = valid
	}{
		{"defaults", func(*Config) {}, nil},
		{"postgresql scheme", func(c *Config) { c.Database.URL = "postgresql://h/db" }, nil},
		{"https public url", func(c *Config) { c.PublicURL = "https://id.univ.example" }, nil},
		{"smtp complete", func(c *Config) { c.Mail.Driver, c.Mail.SMTP.Host = "smtp", "mx.example" }, nil},
		{"bad listen", func(c *Config) { c.Listen = "8080" }, []string{"listen"}},
		{"relative public url", func(c *Config) { c.PublicURL = "id.univ.example" }, []string{"public_url"}},
		{"public url with query", func(c *Config) { c.PublicURL = "https://id.example/?x=1" }, []string{"public_url"}},
		{"language", func(c *Config) { c.DefaultLanguage = "de" }, []string{"default_language"}},
		{"proxy", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "lan"} }, []string{"trusted_proxies", `"lan"`}},
		{"database scheme", func(c *Config) { c.Database.URL = "mysql://h/db" }, []string{"database.url"}},
		{"database password redacted", func(c *Config) { c.Database.URL = "mysql://u:s3cret@h/db" }, []string{"database.url", "xxxxx"}},
		{"log enums", func(c *Config) { c.Log.Level, c.Log.Format = "verbose", "xml" }, []string{"log.level", "log.format"}},
		{"preset", func(c *Config) { c.Password.Preset = "strong" }, []string{"password.preset"}},
		{"zero durations", func(c *Config) { c.Session.IdleTimeout, c.Mail.PollPeriod = 0, -1 }, []string{"session.idle_timeout", "mail.poll_period"}},
		{"device and delivery durations", func(c *Config) {
			c.OIDC.DeviceCodeLifetime, c.Delivery.Timeout, c.Delivery.RetryMax = 0, -1, 0
		}, []string{"oidc.device_code_lifetime", "delivery.timeout", "delivery.retry_max"}},
		{"device poll interval in whole seconds", func(c *Config) { c.OIDC.DevicePollInterval = Duration(1500 * time.Millisecond) },
			[]string{"oidc.device_poll_interval"}},
		{"smtp without host", func(c *Config) { c.Mail.Driver = "smtp" }, []string{"mail.smtp.host"}},
		{"mail driver", func(c *Config) { c.Mail.Driver = "sendmail" }, []string{"mail.driver"}},
		{"smtp both passwords", func(c *Config) {
			c.Mail.Driver, c.Mail.SMTP.Host, c.Mail.SMTP.Password, c.Mail.SMTP.PasswordFile = "smtp", "mx", "a", "/nonexistent/pw"
		}, []string{"mail.smtp.password_file"}},
		{"many problems listed together", func(c *Config) {
			c.Listen = "nowhere"
			c.DefaultLanguage = "es"
			c.Log.Level = "loud"
			c.Password.Preset = "x"
			c.Session.RememberFor = 0
			c.Mail.From = "not an address"
			c.Mail.Driver = "smtp"
			c.Mail.SMTP.Security = "ssl"
			c.Mail.SMTP.Port = 0
		}, []string{"listen", "default_language", "log.level", "password.preset", "session.remember_for", "mail.from",
			"mail.smtp.host", "mail.smtp.security", "mail.smtp.port"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load("", nil)
			if err != nil {
				t.Fatal(err)
			}
			tc.change(&c)
			err = c.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted the configuration")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error shows the database password: %v", err)
			}
			if tc.name == "many problems listed together" {
				if n := len(strings.Split(err.Error(), "\n")); n != len(tc.want) {
					t.Errorf("%d problems reported on %d lines, want one line each:\n%v", len(tc.want), n, err)
				}
			}
		})
	}
}

func TestDerivedDefaults(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		env   []string
		check func(c Config) (got, want any)
	}{
		{"database under the default data dir", "", nil,
			func(c Config) (any, any) {
				return c.Database.URL, "sqlite:" + filepath.Join("campusid-data", "campusid.db")
			}},
		{"database under data_dir from the file", "data_dir: /var/lib/campusid\n", nil,
			func(c Config) (any, any) { return c.Database.URL, "sqlite:/var/lib/campusid/campusid.db" }},
		{"database under data_dir from the environment", "", []string{"CAMPUSID_DATA_DIR=/srv/id"},
			func(c Config) (any, any) { return c.Database.URL, "sqlite:/srv/id/campusid.db" }},
		{"explicit database url kept", "data_dir: /srv/id\ndatabase:\n  url: postgres://h/db\n", nil,
			func(c Config) (any, any) { return c.Database.URL, "postgres://h/db" }},
		{"dev mail without smtp host", "", nil,
			func(c Config) (any, any) { return c.Mail.Driver, "dev" }},
		{"smtp when the host is set", "mail:\n  smtp:\n    host: mx.univ.example\n", nil,
			func(c Config) (any, any) { return c.Mail.Driver, "smtp" }},
		{"smtp when the host comes from the environment", "", []string{"CAMPUSID_MAIL_SMTP_HOST=mx"},
			func(c Config) (any, any) { return c.Mail.Driver, "smtp" }},
		{"explicit driver kept", "mail:\n  driver: dev\n  smtp:\n    host: mx.univ.example\n", nil,
			func(c Config) (any, any) { return c.Mail.Driver, "dev" }},
		{"public url trailing slashes trimmed", "public_url: https://id.example//\n", nil,
			func(c Config) (any, any) { return c.PublicURL, "https://id.example" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = writeFile(t, tc.file)
			}
			c, err := Load(path, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := tc.check(c); got != want {
				t.Errorf("got %#v, want %#v", got, want)
			}
		})
	}
}

func TestSMTPPasswordFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		smtp    SMTP
		want    string
		wantErr bool
	}{
		{"inline password", SMTP{Password: "inline"}, "inline", false},
		{"file with newline", SMTP{PasswordFile: write("nl", "s3cret pass\n")}, "s3cret pass", false},
		{"file with CRLF", SMTP{PasswordFile: write("crlf", "s3cret\r\n")}, "s3cret", false},
		{"file without newline", SMTP{PasswordFile: write("plain", "s3cret")}, "s3cret", false},
		{"missing file", SMTP{PasswordFile: filepath.Join(dir, "absent")}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.smtp.SMTPPassword()
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "mail.smtp.password_file") {
					t.Fatalf("err = %v, want one naming mail.smtp.password_file", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("SMTPPassword = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	t.Run("unreadable file fails Validate", func(t *testing.T) {
		c, _ := Load("", []string{"CAMPUSID_MAIL_SMTP_HOST=mx", "CAMPUSID_MAIL_SMTP_PASSWORD_FILE=" + filepath.Join(dir, "absent")})
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "mail.smtp.password_file") {
			t.Fatalf("Validate = %v", err)
		}
	})
}

func TestKeys(t *testing.T) {
	keys := map[string]Key{}
	for _, k := range Keys() {
		if k.Doc == "" {
			t.Errorf("key %s has no documentation", k.Path)
		}
		keys[k.Path] = k
	}
	for path, def := range map[string]string{
		"listen": "localhost:8080", "public_url": "http://localhost:8080", "data_dir": "./campusid-data",
		"database.url": "", "session.remember_for": (30 * 24 * time.Hour).String(), "mail.smtp.port": "587",
	} {
		k, ok := keys[path]
		if !ok {
			t.Errorf("Keys() lacks %s", path)
			continue
		}
		if k.Default != def {
			t.Errorf("default of %s = %q, want %q", path, k.Default, def)
		}
	}
	for _, k := range []string{"session", "mail.smtp", "password.hash"} {
		if _, ok := keys[k]; ok {
			t.Errorf("Keys() lists the section %s as a key", k)
		}
	}
	for path, env := range map[string]string{"database.url": "CAMPUSID_DATABASE_URL", "mail.smtp.helo_name": "CAMPUSID_MAIL_SMTP_HELO_NAME", "listen": "CAMPUSID_LISTEN"} {
		if got := EnvName(path); got != env {
			t.Errorf("EnvName(%s) = %s, want %s", path, got, env)
		}
	}
}

// TestEveryKeyHasAnEnvironmentVariable sets each key listed by Keys() from
// its variable alone and checks the value changed.
func TestEveryKeyHasAnEnvironmentVariable(t *testing.T) {
	def := Default()
	values := map[string]reflect.Value{}
	walk(reflect.ValueOf(&def).Elem(), "", func(path string, v reflect.Value, _ reflect.StructField) { values[path] = v })
	for _, k := range Keys() {
		t.Run(k.Path, func(t *testing.T) {
			v, ok := values[k.Path]
			if !ok {
				t.Fatalf("no field for %s", k.Path)
			}
			var s string
			switch v.Addr().Interface().(type) {
			case *Duration:
				s = "7d"
			case *[]string:
				s = "192.0.2.7,192.0.2.8"
			case *[]OIDCClient:
				s = `[{id: app, name: App, public: true, redirect_uris: ["http://127.0.0.1/cb"]}]`
			case *[]CASService:
				s = `[{id: ent, name: ENT, url: "https://ent.example/"}]`
			default:
				switch v.Kind() {
				case reflect.String:
					s = "changed-value"
				case reflect.Bool:
					s = "false"
					if !v.Bool() {
						s = "true"
					}
				default:
					s = "7"
				}
			}
			c, err := Load("", []string{EnvName(k.Path) + "=" + s})
			if err != nil {
				t.Fatalf("%s=%s: %v", EnvName(k.Path), s, err)
			}
			var got reflect.Value
			walk(reflect.ValueOf(&c).Elem(), "", func(path string, v reflect.Value, _ reflect.StructField) {
				if path == k.Path {
					got = v
				}
			})
			if formatValue(got) == k.Default {
				t.Errorf("%s=%s left %s at its default %q", EnvName(k.Path), s, k.Path, k.Default)
			}
		})
	}
}
