package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
	"unicode/utf8"
)

// Request is what an ACL decides on.
type Request struct {
	// Path is the request path below /v1/, without a leading slash
	// ("secrets/app/db"). A list of a folder ends in '/' ("secrets/app/"),
	// as in Vault.
	Path string
	// Capability is the capability the request needs: create, read,
	// update, delete, list or sudo.
	Capability Capability
	// Time is when the request was made; time_of_day and days_of_week
	// conditions are evaluated at it. The zero time is unknown.
	Time time.Time
	// ClientAddr is the caller's address; the zero (invalid) Addr is
	// unknown.
	ClientAddr netip.Addr
	// TTL is the TTL the request asks for; 0 when it asks for none.
	TTL time.Duration
}

// Decision is an ACL's answer to a Request.
type Decision struct {
	// Allowed is the answer.
	Allowed bool
	// Policy, RuleIndex and RulePath name the rule that decided: the
	// first rule that allowed, or the first that denied. RuleIndex is -1
	// and the others empty when no rule decided (no rule grants).
	Policy    string
	RuleIndex int
	RulePath  string
	// Reason says why, for people ("denied by policy lockdown rule 2
	// (secrets/**)").
	Reason string
	// FailedCondition names the condition (source_ip, ...) that denied
	// because it could not be evaluated, or, when no rule grants, the
	// first condition that kept an otherwise matching allow rule from
	// applying.
	FailedCondition string
	// Trace lists every rule of every policy examined, in order. Only
	// Explain fills it; Evaluate leaves it nil.
	Trace []RuleResult
}

// RuleOutcome is what one rule did for one request.
type RuleOutcome string

// The outcomes of a rule.
const (
	// OutcomeNoMatch: the rule's path does not match the request's.
	OutcomeNoMatch RuleOutcome = "no match"
	// OutcomeNotCovered: the path matches, but the rule does not name the
	// requested capability.
	OutcomeNotCovered RuleOutcome = "capability not covered"
	// OutcomeConditionNotMet: a condition is false, so the rule does not
	// apply.
	OutcomeConditionNotMet RuleOutcome = "condition not met"
	// OutcomeUnevaluable: a condition cannot be evaluated; the rule denies,
	// whatever its effect.
	OutcomeUnevaluable RuleOutcome = "condition cannot be evaluated"
	// OutcomeAllows: the rule grants the capability.
	OutcomeAllows RuleOutcome = "allows"
	// OutcomeDenies: the rule denies the capability.
	OutcomeDenies RuleOutcome = "denies"
	// OutcomeInvalid: the rule is not valid (only a Policy built by hand,
	// not by Parse, can have one); it matches every path and denies.
	OutcomeInvalid RuleOutcome = "invalid rule"
)

// RuleResult is one rule's part in a decision.
type RuleResult struct {
	Policy       string
	RuleIndex    int
	Path         string
	Matched      bool // the rule's path matched the request's
	Effect       Effect
	Capabilities []Capability
	// Conditions are the rule's conditions and their outcome; evaluated
	// only when the path matched and the rule names the capability.
	Conditions []ConditionResult
	Outcome    RuleOutcome
}

// ConditionResult is the outcome of one condition of a rule.
type ConditionResult struct {
	Name string // time_of_day, days_of_week, source_ip or ttl_max
	OK   bool   // the condition holds
	// Unknown: the condition could not be evaluated (it counts as deny).
	Unknown bool
	Why     string
}

// ACL is a compiled set of policies. It is immutable and safe for
// concurrent use.
type ACL struct {
	names []string
	root  bool
	rules []compiledRule
}

type compiledRule struct {
	policy string
	index  int
	path   string
	glob   *glob // nil for an invalid rule: it matches every path
	// invalid says why the rule did not compile.
	invalid string
	effect  Effect
	caps    uint8 // capBit set; denyAll rules cover every capability
	denyAll bool
	capList []Capability
	conds   []condition
	// The decision's reasons, formatted once.
	allowReason, denyReason string
}

// NewACL compiles policies into an ACL. Nil policies are skipped. With the
// built-in root policy among them, the ACL allows everything. Rules are
// examined in the order of the policies, then of their rules.
//
// A rule of a policy built by hand rather than by Parse that does not
// validate matches every path and denies, so a broken policy fails closed.
func NewACL(policies ...*Policy) *ACL {
	a := &ACL{}
	zones := make(map[string]zoneResult)
	for _, p := range policies {
		if p == nil {
			continue
		}
		a.names = append(a.names, p.Name)
		if p.root {
			a.root = true
			continue
		}
		for i := range p.Rules {
			a.rules = append(a.rules, compileRule(p.Name, i, &p.Rules[i], zones))
		}
	}
	if a.root {
		a.rules = nil
	}
	return a
}

func compileRule(policy string, index int, r *Rule, zones map[string]zoneResult) compiledRule {
	cr := compiledRule{
		policy:      policy,
		index:       index,
		path:        r.Path,
		effect:      r.Effect,
		capList:     slices.Clone(r.Capabilities),
		allowReason: fmt.Sprintf("allowed by policy %s rule %d (%s)", policy, index, r.Path),
		denyReason:  fmt.Sprintf("denied by policy %s rule %d (%s)", policy, index, r.Path),
	}
	g, err := compileGlob(r.Path)
	if err != nil {
		cr.invalid = fmt.Sprintf("path: %v", err)
	}
	for _, c := range r.Capabilities {
		bit, ok := capBit(c)
		if !ok {
			cr.invalid = fmt.Sprintf("unknown capability %q", c)
			break
		}
		cr.caps |= bit
		if c == Deny {
			cr.denyAll = true
		}
	}
	switch {
	case len(r.Capabilities) == 0:
		cr.invalid = "no capabilities"
	case r.Effect != EffectAllow && r.Effect != EffectDeny:
		cr.invalid = fmt.Sprintf("unknown effect %q", r.Effect)
	}
	if cr.invalid != "" {
		cr.denyReason = fmt.Sprintf("denied by policy %s rule %d (%s): the rule is invalid: %s", policy, index, r.Path, cr.invalid)
		return cr
	}
	cr.glob = g
	if cr.denyAll {
		cr.effect = EffectDeny
	}
	cr.conds = compileConditions(&r.Conditions, zones)
	return cr
}

// Policies returns the names of the ACL's policies, in the order given.
func (a *ACL) Policies() []string { return slices.Clone(a.names) }

// IsRoot reports whether the ACL holds the root policy.
func (a *ACL) IsRoot() bool { return a.root }

// Evaluate decides req. Deny wins: any rule that denies (an applicable
// deny rule, or any rule naming the capability whose condition cannot be
// evaluated) denies, even if others allow; otherwise some applicable allow
// rule must grant, or the request is denied. The root policy allows every
// request for a valid capability. Decision.Trace is nil; Explain fills it.
func (a *ACL) Evaluate(req Request) Decision { return a.decide(&req, false) }

// Explain decides req as Evaluate does and also returns, in Trace, the
// outcome of every rule and condition examined.
func (a *ACL) Explain(req Request) Decision { return a.decide(&req, true) }

// Capabilities returns the capabilities the ACL grants on path at time at
// for a client at addr, sorted, as sys/capabilities-self answers: ["root"]
// for the root policy, ["deny"] when it grants none.
func (a *ACL) Capabilities(path string, at time.Time, addr netip.Addr) []string {
	if a.root {
		return []string{"root"}
	}
	var out []string
	for _, c := range requestCapabilities() {
		d := a.decide(&Request{Path: path, Capability: c, Time: at, ClientAddr: addr}, false)
		if d.Allowed {
			out = append(out, string(c))
		}
	}
	if len(out) == 0 {
		return []string{string(Deny)}
	}
	slices.Sort(out)
	return out
}

func (a *ACL) decide(req *Request, trace bool) Decision {
	bit, ok := capBit(req.Capability)
	if !ok || req.Capability == Deny {
		return Decision{RuleIndex: -1, Reason: fmt.Sprintf("unknown capability %q requested", req.Capability)}
	}
	if a.root {
		d := Decision{Allowed: true, Policy: RootPolicyName, RuleIndex: 0, RulePath: "**", Reason: "allowed by policy root (the root policy allows everything)"}
		if trace {
			caps := requestCapabilities()
			d.Trace = []RuleResult{{Policy: RootPolicyName, RuleIndex: 0, Path: "**", Matched: true, Effect: EffectAllow, Capabilities: caps[:], Outcome: OutcomeAllows}}
		}
		return d
	}
	var buf [maxStackSegs]string
	segs := splitPath(buf[:0], req.Path)
	if why := checkRequestPath(req.Path, segs); why != "" {
		return Decision{RuleIndex: -1, Reason: fmt.Sprintf("invalid request path %q: %s", req.Path, why)}
	}

	var (
		denied  *compiledRule
		deny    Decision
		granted *compiledRule
		// The first allow rule that named the capability but whose
		// condition was false, and that condition: the likely reason
		// when no rule grants.
		missed     *compiledRule
		missedCond *condition
		results    []RuleResult
	)
	for i := range a.rules {
		r := &a.rules[i]
		var res *RuleResult
		if trace {
			results = append(results, RuleResult{Policy: r.policy, RuleIndex: r.index, Path: r.path, Effect: r.effect, Capabilities: slices.Clone(r.capList)})
			res = &results[len(results)-1]
		}
		if r.invalid != "" {
			if res != nil {
				res.Matched, res.Outcome = true, OutcomeInvalid
			}
			if denied == nil {
				denied = r
				deny = Decision{Policy: r.policy, RuleIndex: r.index, RulePath: r.path, Reason: r.denyReason}
			}
		} else if !r.glob.match(req.Path, segs) {
			if res != nil {
				res.Outcome = OutcomeNoMatch
			}
			continue
		} else if r.caps&bit == 0 && !r.denyAll {
			if res != nil {
				res.Matched, res.Outcome = true, OutcomeNotCovered
			}
			continue
		} else {
			if res != nil {
				res.Matched = true
			}
			var unknown, falseCond *condition
			var unknownWhy string
			for j := range r.conds {
				c := &r.conds[j]
				st, why := c.eval(req, trace)
				switch {
				case st == condUnknown && unknown == nil:
					unknown, unknownWhy = c, why
				case st == condFalse && falseCond == nil:
					falseCond = c
				}
				if res != nil {
					res.Conditions = append(res.Conditions, ConditionResult{Name: c.name, OK: st == condTrue, Unknown: st == condUnknown, Why: why})
				}
			}
			var outcome RuleOutcome
			switch {
			case unknown != nil:
				outcome = OutcomeUnevaluable
				if denied == nil {
					denied = r
					deny = Decision{
						Policy: r.policy, RuleIndex: r.index, RulePath: r.path, FailedCondition: unknown.name,
						Reason: fmt.Sprintf("condition %s of policy %s rule %d cannot be evaluated: %s", unknown.name, r.policy, r.index, unknownWhy),
					}
				}
			case falseCond != nil:
				outcome = OutcomeConditionNotMet
				if r.effect == EffectAllow && missed == nil {
					missed, missedCond = r, falseCond
				}
			case r.effect == EffectDeny:
				outcome = OutcomeDenies
				if denied == nil {
					denied = r
					deny = Decision{Policy: r.policy, RuleIndex: r.index, RulePath: r.path, Reason: r.denyReason}
				}
			default:
				outcome = OutcomeAllows
				if granted == nil {
					granted = r
				}
			}
			if res != nil {
				res.Outcome = outcome
			}
		}
		if denied != nil && !trace {
			break // deny wins: nothing later can change the decision
		}
	}

	var d Decision
	switch {
	case denied != nil:
		d = deny
	case granted != nil:
		d = Decision{Allowed: true, Policy: granted.policy, RuleIndex: granted.index, RulePath: granted.path, Reason: granted.allowReason}
	default:
		d = Decision{RuleIndex: -1, Reason: fmt.Sprintf("no rule grants %s on %s", req.Capability, req.Path)}
		if missed != nil {
			_, why := missedCond.eval(req, true)
			d.FailedCondition = missedCond.name
			d.Reason += fmt.Sprintf(" (policy %s rule %d (%s) would, but condition %s is not met: %s)", missed.policy, missed.index, missed.path, missedCond.name, why)
		}
	}
	d.Trace = results
	return d
}

// checkRequestPath returns why path, split into segs, is not a path a rule
// can be matched against, or "". Paths are relative, clean and printable;
// only the last segment may be empty (a folder: "secrets/app/").
func checkRequestPath(path string, segs []string) string {
	if path == "" {
		return "empty"
	}
	if !utf8.ValidString(path) {
		return "not valid UTF-8"
	}
	for _, r := range path {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return "contains a control character"
		}
	}
	for i, s := range segs {
		switch {
		case s == "" && i < len(segs)-1:
			if i == 0 {
				return "starts with '/'"
			}
			return "has an empty segment"
		case s == "." || s == "..":
			return fmt.Sprintf("has a %q segment", s)
		}
	}
	return ""
}

// String describes d in one line.
func (d Decision) String() string {
	if d.Allowed {
		return "allowed: " + d.Reason
	}
	return "denied: " + d.Reason
}
