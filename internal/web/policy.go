package web

// PolicyView is the password checklist shown beside a new-password field
// (the "policy_rules" template); policy.js updates it while typing and the
// server fills State after a refused submission.
type PolicyView struct {
	ID     string
	Rules  []PolicyRule
	OK, KO string // screen-reader words for a met and an unmet rule
}

// PolicyRule is one line of the checklist.
type PolicyRule struct {
	Code      string
	Min, Max  int
	Chars     string
	Normalize bool
	Text      string
	State     string // "", "ok" or "ko"
}
