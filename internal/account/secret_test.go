package account

import "testing"

func TestFoldAnswer(t *testing.T) {
	cases := []struct{ a, b string }{
		{"Rue Saint-Jean", "rue saint jean"},
		{"Élodie", "elodie"},
		{"  L'Haÿ-les-Roses ", "lhaylesroses"},
		{"Müller, 12", "MULLER12"},
		{"ﬁdèle", "fidele"}, // ligature, NFKD
	}
	for _, c := range cases {
		if FoldAnswer(c.a) != FoldAnswer(c.b) {
			t.Errorf("FoldAnswer(%q) = %q, FoldAnswer(%q) = %q: want equal", c.a, FoldAnswer(c.a), c.b, FoldAnswer(c.b))
		}
	}
	if FoldAnswer("Rue Saint-Jean") == FoldAnswer("Rue Saint-Jacques") {
		t.Error("different answers fold alike")
	}
}

func TestValidateSecret(t *testing.T) {
	cases := []struct {
		name, q, a string
		ok         bool
	}{
		{"fine", "Nom de ma première école ?", "Jules Ferry", true},
		{"no question", "  ", "Jules Ferry", false},
		{"short answer", "Ville ?", "a-b", false},
		{"answer in question", "Ma ville, Rouen ?", "rouen", false},
	}
	for _, c := range cases {
		if err := ValidateSecret(c.q, c.a); (err == nil) != c.ok {
			t.Errorf("%s: ValidateSecret = %v", c.name, err)
		}
	}
}
