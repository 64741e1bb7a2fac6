package account

import (
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

func mustPolicy(t testing.TB, preset string, minLen, maxLen int) Policy {
	t.Helper()
	p, err := NewPolicy(preset, minLen, maxLen)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func codes(vs []Violation) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Code)
	}
	return out
}

func TestNewPolicy(t *testing.T) {
	tests := []struct {
		name           string
		preset         string
		minLen, maxLen int
		want           Policy
		wantErr        string
	}{
		{name: "seed defaults", preset: "seed", want: Policy{Preset: "seed", MinLen: 8, MaxLen: 50}},
		{name: "nist defaults", preset: "nist", want: Policy{Preset: "nist", MinLen: 8, MaxLen: 64}},
		{name: "nist custom", preset: "nist", minLen: 12, maxLen: 128, want: Policy{Preset: "nist", MinLen: 12, MaxLen: 128}},
		{name: "only min given", preset: "seed", minLen: 10, want: Policy{Preset: "seed", MinLen: 10, MaxLen: 50}},
		{name: "unknown preset", preset: "strict", wantErr: "unknown"},
		{name: "empty preset", preset: "", wantErr: "unknown"},
		{name: "min above max", preset: "seed", minLen: 20, maxLen: 10, wantErr: "above the maximum"},
		{name: "min above default max", preset: "seed", minLen: 60, wantErr: "above the maximum"},
		{name: "negative min", preset: "nist", minLen: -1, wantErr: "at least 1"},
		{name: "absurd max", preset: "nist", maxLen: 1 << 20, wantErr: "at most"},
		{name: "seed max too short for four classes", preset: "seed", minLen: 1, maxLen: 3, wantErr: "four"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewPolicy(tt.preset, tt.minLen, tt.maxLen)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "account: ") {
					t.Fatalf("NewPolicy(%q, %d, %d) error = %v, want one containing %q", tt.preset, tt.minLen, tt.maxLen, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("NewPolicy(%q, %d, %d) = %+v, %v; want %+v", tt.preset, tt.minLen, tt.maxLen, got, err, tt.want)
			}
		})
	}
}

func TestPresetNames(t *testing.T) {
	names := PresetNames()
	if !reflect.DeepEqual(names, []string{"seed", "nist"}) {
		t.Fatalf("PresetNames() = %v", names)
	}
	for _, n := range names {
		if _, err := NewPolicy(n, 0, 0); err != nil {
			t.Errorf("NewPolicy(%q): %v", n, err)
		}
	}
}

func TestRules(t *testing.T) {
	tests := []struct {
		name string
		p    Policy
		want []Rule
	}{
		{name: "seed", p: mustPolicy(t, "seed", 0, 0), want: []Rule{
			{Code: "length", Min: 8, Max: 50},
			{Code: "upper"}, {Code: "lower"}, {Code: "digit"},
			{Code: "special", Chars: "![]{}()%$#@+-_"},
			{Code: "allowed", Chars: "![]{}()%$#@+-_"},
			{Code: "common"},
		}},
		{name: "nist", p: mustPolicy(t, "nist", 10, 100), want: []Rule{
			{Code: "length", Min: 10, Max: 100},
			{Code: "common"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Rules(); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Rules() = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// personal is what an account page passes as personal inputs.
var personal = []string{"jdupont", "Hélène", "Dupont", "Hélène Dupont", "helene.dupont@univ-exemple.fr", "lena.d@gmail.com", "Li"}

type checkCase struct {
	name     string
	password string
	personal []string
	want     []string
}

func runCheck(t *testing.T, p Policy, tests []checkCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := codes(p.Check(tt.password, tt.personal))
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Check(%q) = %v, want %v", tt.password, got, tt.want)
			}
		})
	}
}

func TestCheckSeed(t *testing.T) {
	tests := []checkCase{
		{name: "strong", password: "Vq7!r2#Lp9_x"},
		{name: "8 chars", password: "Xk9#mP2$"},
		{name: "7 chars", password: "Xk9#mP2", want: []string{"length"}},
		{name: "50 chars", password: "Vq7!r2#Lp9_xHk4$Wz8!QmRq5+Tn3_WvJd8#kLp2Gs6@Bn1-Yc"},
		{name: "51 chars", password: "Vq7!r2#Lp9_xHk4$Wz8!QmRq5+Tn3_WvJd8#kLp2Gs6@Bn1-Yc4", want: []string{"length"}},
		{name: "empty", password: "", want: []string{"length", "upper", "lower", "digit", "special", "common"}},
		{name: "no upper", password: "vq7!r2#lp9_x", want: []string{"upper"}},
		{name: "no lower", password: "VQ7!R2#LP9_X", want: []string{"lower"}},
		{name: "no digit", password: "Vqe!rk#Lpw_x", want: []string{"digit"}},
		{name: "no special", password: "Vq7Er2hLp9wx", want: []string{"special"}},
		{name: "space", password: "Vq7!r2 #Lp9_x", want: []string{"allowed"}},
		{name: "accented letter", password: "Vq7!r2#Lp9_é", want: []string{"allowed"}},
		{name: "other symbol only", password: "Vq7Er2hLp9w*", want: []string{"special", "allowed"}},
		{name: "tab", password: "Vq7!r2#Lp9_\tx", want: []string{"allowed"}},
		{name: "fullwidth letter not normalised", password: "Vq7!r2#Lp9_ｘ", want: []string{"allowed"}},
		{name: "common English", password: "Password1!", want: []string{"common"}},
		{name: "common keyboard", password: "Azerty123!", want: []string{"common"}},
		{name: "common French", password: "Motdepasse1!", want: []string{"common"}},
		{name: "common French with a year", password: "Vacances2023!", want: []string{"common"}},
		{name: "common l33t", password: "P@ssw0rd123!", want: []string{"common"}},
		{name: "family name", password: "Dupont!2024xQ", personal: personal, want: []string{"common", "personal"}},
		{name: "family name upper case", password: "DUPONT#42zq!", personal: personal, want: []string{"personal"}},
		{name: "given name without accents", password: "Helene#42Zq!", personal: personal, want: []string{"personal"}},
		{name: "identifier", password: "Xq!9Jdupont$", personal: personal, want: []string{"personal"}},
		{name: "address local part", password: "Lena.D#9xQ", personal: personal, want: []string{"allowed", "personal"}},
		{name: "address word", password: "Zx9!lenA#Qw", personal: personal, want: []string{"personal"}},
		{name: "domain is not personal", password: "Gmail#9Zq!x7", personal: personal},
		{name: "two-letter name ignored", password: "Lix7#Qw9!Rt", personal: personal},
		{name: "no personal inputs", password: "Dupont#42zq!"},
	}
	for _, c := range SeedSpecials {
		tests = append(tests, checkCase{name: "special " + string(c), password: "Vq7Er2hLp9w" + string(c)})
	}
	runCheck(t, mustPolicy(t, "seed", 0, 0), tests)
}

func TestCheckNIST(t *testing.T) {
	tests := []checkCase{
		{name: "strong", password: "Vq7!r2#Lp9_x"},
		{name: "passphrase with spaces and accents", password: "Ma grand-mère fait des crêpes"},
		{name: "emoji", password: "🔑🔒 my vault key 🗝️ ok"},
		{name: "8 non-ASCII runes", password: "éàüœ€ßçñ"},
		{name: "7 runes", password: "éàüœ€ßç", want: []string{"length"}},
		{name: "64 emoji", password: strings.Repeat("🔑🍀🐙🌵", 16)},
		{name: "65 emoji", password: strings.Repeat("🔑🍀🐙🌵", 16) + "🎲", want: []string{"length"}},
		// NFKC turns the 7 runes into 8: "㎏" becomes "kg".
		{name: "NFKC lengthens", password: "Vq7!r2㎏"},
		// NFKC turns the 8 runes (4 letters, 4 combining accents) into 4.
		{name: "NFKC shortens", password: "e\u0301a\u0300u\u0308c\u0327", want: []string{"length", "common"}},
		{name: "any ASCII", password: "vqer*rk;lpw~"},
		{name: "common", password: "password123", want: []string{"common"}},
		{name: "common French", password: "Motdepasse1!", want: []string{"common"}},
		{name: "common with accents", password: "Mötdepässe1!", want: []string{"common"}},
		{name: "common in fullwidth", password: "ｐａｓｓｗｏｒｄ１２３", want: []string{"common"}},
		{name: "family name", password: "dupont dupont dupont", personal: personal, want: []string{"common", "personal"}},
		{name: "given name with accent", password: "Hélène%X9q!zz", personal: personal, want: []string{"personal"}},
	}
	runCheck(t, mustPolicy(t, "nist", 0, 0), tests)
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		preset, in, want string
	}{
		{"seed", "ｐａｓｓ㎏", "ｐａｓｓ㎏"},
		{"seed", "e\u0301", "e\u0301"},
		{"nist", "ｐａｓｓ㎏", "passkg"},
		{"nist", "e\u0301", "é"},
		{"nist", "ﬁn", "fin"},
	}
	for _, tt := range tests {
		t.Run(tt.preset+" "+tt.in, func(t *testing.T) {
			if got := mustPolicy(t, tt.preset, 0, 0).Normalize(tt.in); got != tt.want {
				t.Fatalf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestPersonalWords(t *testing.T) {
	got := personalWords([]string{"Jean-Luc.Dupont42@example.org", "  Hélène ", "Li", "jean"})
	want := []string{"jean-luc.dupont42", "jean", "luc", "dupont", "helene"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("personalWords() = %q, want %q", got, want)
	}
}

// TestCheckFast bounds the strength estimate on the slowest inputs known: long
// passwords full of l33t characters, each of which zxcvbn reads several ways.
func TestCheckFast(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	nist := mustPolicy(t, "nist", 0, 1024)
	seed := mustPolicy(t, "seed", 0, 0)
	tests := []struct {
		name string
		p    Policy
		pw   string
	}{
		{"seed 50 l33t characters", seed, strings.Repeat("4@8({[<3!1|7+0$5%2", 3)[:50]},
		{"nist 64 l33t characters", nist, strings.Repeat("4@8({[<369!1|7+0$5%2", 4)[:64]},
		{"nist 1024 runes", nist, strings.Repeat("4@8({[<369!1|7+0$5%2é", 60)[:1024]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			best := time.Hour
			for range 3 { // the fastest of three, to ignore a busy machine
				start := time.Now()
				tt.p.Check(tt.pw, personal)
				best = min(best, time.Since(start))
			}
			if best > 50*time.Millisecond {
				t.Fatalf("Check(%d runes) took %v, want under 50ms", utf8.RuneCountInString(tt.pw), best)
			}
		})
	}
}

// TestCheckConcurrent lets the race detector look at zxcvbn's shared tables.
func TestCheckConcurrent(t *testing.T) {
	p := mustPolicy(t, "seed", 0, 0)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if got := codes(p.Check("P@ssw0rd123!", personal)); !reflect.DeepEqual(got, []string{"common"}) {
				t.Errorf("Check = %v", got)
			}
		})
	}
	wg.Wait()
}

func BenchmarkPolicyCheck(b *testing.B) {
	benchmarks := []struct {
		name, preset, pw string
	}{
		{"seed 12 chars", "seed", "Vq7!r2#Lp9_x"},
		{"seed 50 chars", "seed", "Vq7!r2#Lp9_xHk4$Wz8!QmRq5+Tn3_WvJd8#kLp2Gs6@Bn1-Yc"},
		{"seed 50 l33t chars", "seed", strings.Repeat("4@8({[<3!1|7+0$5%2", 3)[:50]},
		{"nist 64 chars", "nist", "Ma grand-mère fait des crêpes le dimanche matin avec du sucre !!"},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			p := mustPolicy(b, bm.preset, 0, 0)
			for b.Loop() {
				p.Check(bm.pw, personal)
			}
		})
	}
}
