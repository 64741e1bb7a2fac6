package account

import (
	"strings"

	"campusid/internal/i18n"
	"campusid/internal/web"
)

// View is the password checklist of the policy for a page: each rule with
// its text in the page's language and, after a refused submission, whether
// it was met ("ok") or not ("ko"). The confirmation ("match") comes before
// "common"; a password built from personal data fails "common".
func (p Policy) View(l i18n.Localizer, violations []Violation, submitted bool) web.PolicyView {
	bad := map[string]bool{}
	for _, v := range violations {
		bad[v.Code] = true
	}
	if bad[ViolationPersonal] {
		bad[RuleCommon] = true
	}
	state := func(code string) string {
		switch {
		case !submitted:
			return ""
		case bad[code]:
			return "ko"
		}
		return "ok"
	}
	v := web.PolicyView{ID: "policy-rules", OK: l.T("policy.ok"), KO: l.T("policy.ko")}
	for _, r := range p.Rules() {
		pr := web.PolicyRule{Code: r.Code, Min: r.Min, Max: r.Max, Chars: r.Chars, State: state(r.Code),
			Normalize: p.Preset == PresetNIST && r.Code == RuleLength}
		switch r.Code {
		case RuleLength:
			pr.Text = l.T("policy.length", r.Min, r.Max)
		case RuleSpecial:
			pr.Text = l.T("policy.special", strings.Join(strings.Split(r.Chars, ""), " "))
		default:
			pr.Text = l.T("policy." + r.Code)
		}
		if r.Code == RuleCommon { // the confirmation comes before "common"
			v.Rules = append(v.Rules, web.PolicyRule{Code: "match", Text: l.T("policy.match"), State: state("match")})
		}
		v.Rules = append(v.Rules, pr)
	}
	return v
}
