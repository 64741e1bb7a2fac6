package account

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nbutton23/zxcvbn-go"
	"github.com/nbutton23/zxcvbn-go/adjacency"
	"github.com/nbutton23/zxcvbn-go/match"
	"github.com/nbutton23/zxcvbn-go/matching"
	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// Password policy presets.
const (
	// PresetSeed is the policy of the source documents: 8 to 50 characters
	// from a fixed ASCII alphabet, with one of each character class.
	PresetSeed = "seed"
	// PresetNIST follows NIST SP 800-63B: length only, any character,
	// Unicode NFKC normalised.
	PresetNIST = "nist"
)

// SeedSpecials are the special characters the seed preset accepts and requires
// one of.
const SeedSpecials = "![]{}()%$#@+-_"

// Rule and violation codes.
const (
	RuleLength  = "length"
	RuleUpper   = "upper"
	RuleLower   = "lower"
	RuleDigit   = "digit"
	RuleSpecial = "special"
	RuleAllowed = "allowed"
	// RuleCommon is the server-side strength estimate (zxcvbn). The page shows
	// it as "not common or built from your name"; it covers both the "common"
	// and the "personal" violations.
	RuleCommon = "common"
	// ViolationPersonal is reported when the password contains one of the
	// account's own names or addresses. It is shown under RuleCommon.
	ViolationPersonal = "personal"
)

// maxPolicyLen bounds a configured maximum length: hashing and checking a
// password must stay cheap whatever the operator writes.
const maxPolicyLen = 1024

// strengthMaxRunes caps the input given to zxcvbn, whose matchers look at
// every substring (quadratic in the length). The first 64 runes of a password
// are enough to tell a common one.
const strengthMaxRunes = 64

// minStrengthScore is the lowest zxcvbn score accepted. zxcvbn-go scores a
// password from its estimated crack time at 10,000 guesses per second (a slow
// hash on 100 cores): 0 under 100 s, 1 under 3 hours, 2 under 12 days, 3 under
// 3 years, 4 beyond. Score 0 and 1 (under about 2e8 guesses) are the
// dictionary words, keyboard walks, names and dates with a capital, a digit and
// a symbol bolted on ("Password1!", "Azerty123!"); they are what an online
// guessing attack or a leaked-hash attack tries first, so they are refused.
// Requiring 3 or more would refuse many passwords that meet the seed rules and
// that people can remember, for little gain behind a rate-limited login and
// argon2id.
const minStrengthScore = 2

// minPersonalRunes is the shortest name or address part looked for in a
// password: shorter ones ("Li", "Bo") would refuse too much.
const minPersonalRunes = 3

// Policy decides which new passwords are accepted.
type Policy struct {
	Preset         string
	MinLen, MaxLen int // in runes, after Normalize
}

// Rule is one item of the checklist shown next to a new-password field.
type Rule struct {
	Code     string
	Min, Max int    // for "length"
	Chars    string // for "special" and "allowed": the special characters
}

// Violation is a rule a password breaks: one of the rule codes, or
// ViolationPersonal.
type Violation struct {
	Code string
}

type presetDefaults struct {
	minLen, maxLen int
}

var presets = map[string]presetDefaults{
	PresetSeed: {minLen: 8, maxLen: 50},
	PresetNIST: {minLen: 8, maxLen: 64},
}

// PresetNames lists the known presets.
func PresetNames() []string {
	return []string{PresetSeed, PresetNIST}
}

// NewPolicy returns the policy of preset with the given length bounds; 0 means
// the preset's default.
func NewPolicy(preset string, minLen, maxLen int) (Policy, error) {
	d, ok := presets[preset]
	if !ok {
		return Policy{}, fmt.Errorf("account: unknown password policy preset %q (want one of %s)",
			preset, strings.Join(PresetNames(), ", "))
	}
	if minLen == 0 {
		minLen = d.minLen
	}
	if maxLen == 0 {
		maxLen = d.maxLen
	}
	switch {
	case minLen < 1:
		return Policy{}, fmt.Errorf("account: password minimum length %d must be at least 1", minLen)
	case maxLen > maxPolicyLen:
		return Policy{}, fmt.Errorf("account: password maximum length %d must be at most %d", maxLen, maxPolicyLen)
	case minLen > maxLen:
		return Policy{}, fmt.Errorf("account: password minimum length %d is above the maximum %d", minLen, maxLen)
	case preset == PresetSeed && maxLen < 4:
		return Policy{}, fmt.Errorf("account: password maximum length %d cannot hold the four character classes", maxLen)
	}
	return Policy{Preset: preset, MinLen: minLen, MaxLen: maxLen}, nil
}

// Rules returns the checklist the page shows, in the order Check reports
// violations.
func (p Policy) Rules() []Rule {
	rules := []Rule{{Code: RuleLength, Min: p.MinLen, Max: p.MaxLen}}
	if p.Preset == PresetSeed {
		rules = append(rules,
			Rule{Code: RuleUpper},
			Rule{Code: RuleLower},
			Rule{Code: RuleDigit},
			Rule{Code: RuleSpecial, Chars: SeedSpecials},
			Rule{Code: RuleAllowed, Chars: SeedSpecials},
		)
	}
	return append(rules, Rule{Code: RuleCommon})
}

// Normalize returns the form of pw that is checked and hashed: NFKC for the
// nist preset, pw unchanged for seed (whose alphabet is ASCII only). Callers
// hash p.Normalize(pw), both when setting and when verifying a password.
func (p Policy) Normalize(pw string) string {
	if p.Preset == PresetNIST {
		return norm.NFKC.String(pw)
	}
	return pw
}

// Check returns every rule password breaks, in Rules() order, with
// ViolationPersonal last; nil when it is acceptable. It normalises password
// itself.
// personal holds the account's identifier, names and addresses; a password
// containing one of them (or a word of them, three letters or more, ignoring
// case and accents) is refused.
func (p Policy) Check(password string, personal []string) []Violation {
	pw := p.Normalize(password)
	var v []Violation
	add := func(code string) { v = append(v, Violation{Code: code}) }

	if n := utf8.RuneCountInString(pw); n < p.MinLen || n > p.MaxLen {
		add(RuleLength)
	}
	if p.Preset == PresetSeed {
		var upper, lower, digit, special bool
		allowed := true
		for _, r := range pw {
			switch {
			case r >= 'A' && r <= 'Z':
				upper = true
			case r >= 'a' && r <= 'z':
				lower = true
			case r >= '0' && r <= '9':
				digit = true
			case strings.ContainsRune(SeedSpecials, r):
				special = true
			default:
				allowed = false
			}
		}
		for _, c := range []struct {
			ok   bool
			code string
		}{{upper, RuleUpper}, {lower, RuleLower}, {digit, RuleDigit}, {special, RuleSpecial}, {allowed, RuleAllowed}} {
			if !c.ok {
				add(c.code)
			}
		}
	}

	words := personalWords(personal)
	if weak(pw, words) {
		add(RuleCommon)
	}
	folded := fold(pw)
	for _, w := range words {
		if strings.Contains(folded, w) {
			add(ViolationPersonal)
			break
		}
	}
	return v
}

// weak reports whether zxcvbn scores pw below minStrengthScore. The
// account's words and commonWords are given to zxcvbn as user inputs, so
// "Dupont2024!" and "Motdepasse1!" count as guessable; accents are removed
// first, since "Mötdepässe" is no harder to guess than "Motdepasse".
func weak(pw string, account []string) bool {
	if pw == "" {
		return true
	}
	if utf8.RuneCountInString(pw) > strengthMaxRunes {
		pw = string([]rune(pw)[:strengthMaxRunes])
	}
	pw = stripAccents(pw)
	inputs := make([]string, 0, len(account)+len(commonWords))
	inputs = append(append(inputs, account...), commonWords...)
	var filters []func(match.Matcher) bool
	if n := utf8.RuneCountInString(pw); leetVariants(pw)*n*n > leetBudget {
		filters = append(filters, matching.FilterL33tMatcher)
	}
	return zxcvbn.PasswordStrength(pw, inputs, filters...).Score < minStrengthScore
}

// leetBudget bounds the work of zxcvbn's l33t matcher, which runs every
// dictionary on every substring (n² of them for n runes) of every way to read
// the password's l33t characters back as letters ("@" as "a", "1" as "i" or
// "l"...). The seed alphabet holds most of these characters, so a password can
// have hundreds of readings: 60 runes of them took over half a second, and
// each reading of 50 runes costs about 2 ms. Past the budget (16 readings of
// 16 runes, 4 of 32, 1 of 64: a few milliseconds) the l33t matcher is skipped:
// a password that long or that full of symbols is not one of the common l33t
// spellings ("P@ssw0rd!", one reading of 9 runes) it exists to catch.
const leetBudget = 64 * 64

// leetVariants estimates how many readings the l33t matcher tries for pw: the
// product, over the letters of zxcvbn's l33t table, of how many of their
// substitutes pw contains.
func leetVariants(pw string) int {
	n, any := 1, false
	for _, subs := range adjacency.GraphMap["l33t"].Graph {
		c := 0
		for _, s := range subs {
			if strings.Contains(pw, s) {
				c++
			}
		}
		if c > 0 {
			n, any = n*c, true
		}
	}
	if !any {
		return 0
	}
	return n
}

// commonWords supplements the English dictionaries of zxcvbn-go with the base
// words of the commonest French passwords and with words of this service's
// context, roughly most common first (zxcvbn rates a word by its rank).
// Lowercase, without accents; zxcvbn itself handles capitals, digits and
// symbols added around them.
var commonWords = []string{
	"azerty", "motdepasse", "soleil", "doudou", "loulou", "chouchou", "marseille",
	"jetaime", "bonjour", "coucou", "nicolas", "julien", "camille", "chocolat",
	"princesse", "amour", "doudoune", "bisous", "cheri", "cherie", "moncoeur",
	"azertyuiop", "vacances", "bienvenue", "salut", "bonsoir", "france", "paris",
	"toulouse", "bordeaux", "lyon", "nantes", "lille", "strasbourg", "montpellier",
	"rennes", "grenoble", "nice", "liberte", "olympique", "football", "maman", "papa",
	"famille", "bebe", "chaton", "lapin", "papillon", "fleur", "etoile", "poupette",
	"tintin", "pompier", "thomas", "alexandre", "maxime", "antoine", "manon", "marine",
	"pauline", "julie", "sophie", "celine", "aurelie", "caroline", "isabelle",
	"nathalie", "sandrine", "stephanie", "valentin", "lucas", "louis", "hugo",
	"janvier", "fevrier", "mars", "avril", "juin", "juillet", "aout", "septembre",
	"octobre", "novembre", "decembre", "lundi", "mardi", "mercredi", "jeudi",
	"vendredi", "samedi", "dimanche", "printemps", "automne", "hiver", "secret",
	"motdepass", "nouveau", "changer", "connexion", "identifiant", "utilisateur",
	"administrateur", "essai", "universite", "etudiant", "etudiante", "faculte",
	"campus", "campusid", "ecole", "college", "lycee", "informatique",
	"bibliotheque", "examen", "rentree",
}

// personalWords returns, folded, each value of personal (the local part for an
// address) and each run of letters in it, keeping those of at least
// minPersonalRunes runes. "jean-luc.dupont42@example.org" gives
// "jean-luc.dupont42", "jean", "luc" and "dupont".
func personalWords(personal []string) []string {
	var words []string
	seen := map[string]bool{}
	keep := func(w string) {
		if utf8.RuneCountInString(w) >= minPersonalRunes && !seen[w] {
			seen[w] = true
			words = append(words, w)
		}
	}
	for _, s := range personal {
		if at := strings.LastIndexByte(s, '@'); at >= 0 {
			s = s[:at]
		}
		s = fold(strings.TrimSpace(s))
		keep(s)
		for _, w := range strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) }) {
			keep(w)
		}
	}
	return words
}

// fold lowercases s and removes its accents: "Hélène" becomes "helene".
func fold(s string) string {
	return strings.ToLower(stripAccents(s))
}

// stripAccents removes combining marks: "Hélène" becomes "Helene".
func stripAccents(s string) string {
	t := transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
	out, _, err := transform.String(t, s)
	if err != nil {
		return s
	}
	return out
}
