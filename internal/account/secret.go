package account

import (
	"context"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"campusid/internal/store"
)

// FoldAnswer is the form of a secret answer that is hashed and compared:
// case, accents, spaces, hyphens and punctuation folded away, so
// "Rue Saint-Jean" and "rue saint jean" match.
func FoldAnswer(s string) string {
	var b strings.Builder
	for _, r := range norm.NFKD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r): // accents, after decomposition
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// Secret-question limits of the input.
const (
	MinAnswerRunes   = 3
	MaxQuestionRunes = 200
	MaxAnswerRunes   = 200
)

// ValidateSecret checks a question and an answer as typed; it returns an InputError.
func ValidateSecret(question, answer string) error {
	q := strings.TrimSpace(question)
	if q == "" || len([]rune(q)) > MaxQuestionRunes {
		return &InputError{Field: "question", Key: "question.question_invalid", Text: "the question must have 1 to 200 characters"}
	}
	f := FoldAnswer(answer)
	if len([]rune(f)) < MinAnswerRunes || len([]rune(answer)) > MaxAnswerRunes {
		return &InputError{Field: "answer", Key: "question.answer_invalid", Text: "the answer must have at least 3 letters or digits"}
	}
	if strings.Contains(FoldAnswer(q), f) {
		return &InputError{Field: "answer", Key: "question.answer_in_question", Text: "the answer must not appear in the question"}
	}
	return nil
}

// HashSecret validates and hashes a secret question's answer (the slow
// hash of its folded form), ready for store.SetSecretQuestion.
func (s *Service) HashSecret(ctx context.Context, question, answer string) (store.SecretQuestion, error) {
	if err := ValidateSecret(question, answer); err != nil {
		return store.SecretQuestion{}, err
	}
	h, err := s.Hasher.Hash(ctx, FoldAnswer(answer))
	if err != nil {
		return store.SecretQuestion{}, err
	}
	return store.SecretQuestion{Question: strings.TrimSpace(question), AnswerHash: h, UpdatedAt: s.Now()}, nil
}

// CheckSecret compares an answer with the stored hash (folded first).
func (s *Service) CheckSecret(ctx context.Context, q store.SecretQuestion, answer string) (bool, error) {
	ok, _, err := s.Hasher.Verify(ctx, q.AnswerHash, FoldAnswer(answer))
	return ok, err
}
