// Package policy is SecretHub's access control: ACL policies that say which
// capabilities a token has on which paths.
//
// A policy is a YAML or JSON document (docs/policies.md) of rules, each a
// path glob, capabilities, an effect (allow or deny) and optional
// conditions (time of day, days of the week, source address, maximum TTL).
// Parse validates a document once, naming the field of every problem;
// NewACL compiles a token's policies into an ACL whose Evaluate decides a
// request in a few hundred nanoseconds, and whose Explain tells why, rule
// by rule. The rules of evaluation fail closed: a deny wins over any
// allow, a request no rule grants is denied, and a condition that cannot
// be evaluated (no client address, a time zone that does not load) denies.
//
// The built-in policy root allows everything and cannot be denied; the
// built-in policy default, attached to every other token, lets a token
// look itself up, renew and revoke itself, and read its own capabilities.
//
// Store keeps policies in storage, keeping each document as its author
// wrote it, and caches parsed policies and compiled ACLs until the next
// write.
package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Capability is something a rule allows or denies on a path.
type Capability string

// The capabilities. A request asks for one of Create, Read, Update, Delete,
// List and Sudo. Deny appears only in rules: a rule with the capability
// deny denies every capability, whatever its effect.
const (
	Create Capability = "create"
	Read   Capability = "read"
	Update Capability = "update"
	Delete Capability = "delete"
	List   Capability = "list"
	Sudo   Capability = "sudo"
	Deny   Capability = "deny"
)

// requestCapabilities lists the capabilities a request can ask for, in
// canonical order.
func requestCapabilities() [6]Capability {
	return [6]Capability{Create, Read, Update, Delete, List, Sudo}
}

// capBit returns c's bit in a capability set, and whether c is a
// capability at all.
func capBit(c Capability) (uint8, bool) {
	switch c {
	case Create:
		return 1 << 0, true
	case Read:
		return 1 << 1, true
	case Update:
		return 1 << 2, true
	case Delete:
		return 1 << 3, true
	case List:
		return 1 << 4, true
	case Sudo:
		return 1 << 5, true
	case Deny:
		return 1 << 6, true
	}
	return 0, false
}

// Effect is what a rule does to the capabilities it names.
type Effect string

// The effects.
const (
	EffectAllow Effect = "allow"
	EffectDeny  Effect = "deny"
)

// Names of the built-in policies.
const (
	// RootPolicyName is the built-in policy that allows everything,
	// including sudo, and that no other policy can deny. It cannot be
	// parsed, stored or deleted.
	RootPolicyName = "root"
	// DefaultPolicyName is the built-in policy the core attaches to every
	// token that is not root. A stored policy of that name replaces it.
	DefaultPolicyName = "default"
)

// Limits on a policy document.
const (
	// MaxDocumentSize is the largest document Parse accepts, in bytes.
	MaxDocumentSize = 1 << 20
	// MaxRules is the most rules a policy may have.
	MaxRules = 1000
	// MaxNameLength is the longest policy name.
	MaxNameLength = 128
)

// Policy is a parsed, valid policy. Treat it as immutable: the ACLs and the
// store's cache share it.
type Policy struct {
	// Name is the policy's name.
	Name string
	// Rules are the rules, in document order (indices in decisions and
	// errors refer to it).
	Rules []Rule

	root bool // the built-in root policy; only RootPolicy sets it
}

// IsRoot reports whether p is the built-in root policy.
func (p *Policy) IsRoot() bool { return p != nil && p.root }

// Rule is one rule of a policy, normalised.
type Rule struct {
	// Path is the rule's path glob, as written.
	Path string
	// Capabilities are the capabilities the rule allows or denies,
	// deduplicated, in the order create, read, update, delete, list, sudo.
	// A rule that named deny has Capabilities [deny] and Effect deny.
	Capabilities []Capability
	// Effect is allow or deny.
	Effect Effect
	// Conditions must all hold for the rule to apply.
	Conditions Conditions
}

// DeniesAll reports whether r denies every capability on its path (it
// named the capability deny).
func (r *Rule) DeniesAll() bool {
	return len(r.Capabilities) == 1 && r.Capabilities[0] == Deny
}

// Conditions restrict when a rule applies. The zero value has none.
type Conditions struct {
	// TimeOfDay is a window of the day, or nil.
	TimeOfDay *TimeOfDay
	// DaysOfWeek are the days the rule applies, Monday first,
	// deduplicated; nil for every day.
	DaysOfWeek []time.Weekday
	// TimeZone is the IANA zone TimeOfDay and DaysOfWeek are evaluated
	// in; "" for UTC.
	TimeZone string
	// SourceIP are the networks the client address must be in; nil for
	// any address. Prefixes are masked; a bare address is a /32 or /128.
	SourceIP []netip.Prefix
	// TTLMax is the longest TTL a request may ask for; 0 for no limit.
	TTLMax time.Duration
}

// empty reports whether c has no condition.
func (c *Conditions) empty() bool {
	return c.TimeOfDay == nil && c.DaysOfWeek == nil && c.SourceIP == nil && c.TTLMax == 0
}

// TimeOfDay is a window of the day, in minutes after midnight: the rule
// applies from Start (included) to End (excluded). A window with End
// before Start wraps midnight (22:00 to 06:00). Start and End differ.
type TimeOfDay struct {
	Start, End int
}

// contains reports whether the minute of the day m is in the window.
func (w TimeOfDay) contains(m int) bool {
	if w.Start < w.End {
		return w.Start <= m && m < w.End
	}
	return m >= w.Start || m < w.End
}

func (w TimeOfDay) String() string { return formatClock(w.Start) + "-" + formatClock(w.End) }

// Parse parses and validates the policy document doc, YAML or JSON, as the
// policy name. The document may name the policy too: then the names must
// agree; name may be empty if the document names the policy. Every problem
// is reported in a *ValidationError naming its field
// ("rules[2].capabilities[1]: unknown capability \"raed\"").
//
// Parse refuses the reserved name root.
func Parse(name string, doc []byte) (*Policy, error) {
	return parse(name, doc, parseOptions{})
}

// parseOptions tune parse for where the document comes from.
type parseOptions struct {
	// keepUnknownZones accepts time zones that do not load here, for
	// documents read back from storage: such a policy was valid when it
	// was written (another server, another time zone database), and
	// refusing it would drop its deny rules. Its conditions then fail
	// closed when evaluated.
	keepUnknownZones bool
}

func parse(name string, doc []byte, opts parseOptions) (*Policy, error) {
	if len(doc) > MaxDocumentSize {
		return nil, invalid("", "document is larger than %d bytes", MaxDocumentSize)
	}
	d, err := decodeDocument(doc)
	if err != nil {
		return nil, err
	}
	var ps problems
	p := &Policy{Name: name}
	switch {
	case name != "" && d.Name != "" && d.Name != name:
		ps.add("name", "the document names policy %q, not %q", d.Name, name)
	case name == "" && d.Name == "":
		ps.add("name", "required")
	case name == "":
		p.Name = d.Name
	}
	if p.Name != "" {
		if err := ValidateName(p.Name); err != nil {
			ps.add("name", "%s", err.(*ValidationError).Reason)
		}
	}
	switch {
	case len(d.Rules) == 0:
		ps.add("rules", "at least one rule is required")
	case len(d.Rules) > MaxRules:
		ps.add("rules", "%d rules, more than the %d allowed", len(d.Rules), MaxRules)
	default:
		p.Rules = make([]Rule, len(d.Rules))
		for i := range d.Rules {
			p.Rules[i] = parseRule(&ps, "rules["+strconv.Itoa(i)+"]", &d.Rules[i], opts)
		}
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return p, nil
}

// ValidateName checks a policy name: 1 to 128 characters of a-z, 0-9, '_',
// '.' and '-', not "." or "..", and not the reserved root. Its error is a
// *ValidationError for the field "name".
func ValidateName(name string) error {
	switch {
	case name == "":
		return invalid("name", "required")
	case len(name) > MaxNameLength:
		return invalid("name", "longer than %d characters", MaxNameLength)
	case name == RootPolicyName:
		return invalid("name", "%q is reserved for the built-in root policy", name)
	case name == "." || name == "..":
		return invalid("name", "%q is not a valid policy name", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return invalid("name", "%q has %q at byte %d: use lowercase letters, digits, '_', '.' and '-'", name, rune(c), i)
		}
	}
	return nil
}

func parseRule(ps *problems, field string, d *ruleDoc, opts parseOptions) Rule {
	r := Rule{Path: d.Path, Effect: EffectAllow}
	if _, err := compileGlob(d.Path); err != nil {
		ps.add(field+".path", "%s", err)
	}

	switch Effect(d.Effect) {
	case "", EffectAllow:
	case EffectDeny:
		r.Effect = EffectDeny
	default:
		ps.add(field+".effect", "unknown effect %q (allow or deny)", d.Effect)
	}

	var set uint8
	if len(d.Capabilities) == 0 {
		ps.add(field+".capabilities", "at least one capability is required")
	}
	for j, c := range d.Capabilities {
		bit, ok := capBit(Capability(c))
		if !ok {
			ps.add(field+".capabilities["+strconv.Itoa(j)+"]", "unknown capability %q (create, read, update, delete, list, sudo or deny)", c)
			continue
		}
		set |= bit
	}
	if denyBit, _ := capBit(Deny); set&denyBit != 0 {
		r.Effect = EffectDeny
		r.Capabilities = []Capability{Deny}
	} else {
		for _, c := range requestCapabilities() {
			if bit, _ := capBit(c); set&bit != 0 {
				r.Capabilities = append(r.Capabilities, c)
			}
		}
	}

	if d.Conditions != nil {
		r.Conditions = parseConditions(ps, field+".conditions", d.Conditions, opts)
	}
	return r
}

func parseConditions(ps *problems, field string, d *conditionsDoc, opts parseOptions) Conditions {
	var c Conditions

	zone, zoneField := d.TimeZone, field+".time_zone"
	if tod := d.TimeOfDay; tod != nil {
		todField := field + ".time_of_day"
		start, errStart := parseClock(tod.Start)
		if errStart != nil {
			ps.add(todField+".start", "%s", errStart)
		}
		end, errEnd := parseClock(tod.End)
		if errEnd != nil {
			ps.add(todField+".end", "%s", errEnd)
		}
		if errStart == nil && errEnd == nil && start == end {
			ps.add(todField, "start and end are both %s: the window would be empty", tod.Start)
		}
		c.TimeOfDay = &TimeOfDay{Start: start, End: end}
		if tod.TimeZone != "" {
			if zone != "" && zone != tod.TimeZone {
				ps.add(todField+".time_zone", "%q differs from %s %q", tod.TimeZone, zoneField, zone)
			}
			zone, zoneField = tod.TimeZone, todField+".time_zone"
		}
	}

	if d.DaysOfWeek != nil {
		if len(d.DaysOfWeek) == 0 {
			ps.add(field+".days_of_week", "an empty list would never apply: leave it out for every day")
		}
		var days [7]bool
		for j, name := range d.DaysOfWeek {
			day, ok := parseDay(name)
			if !ok {
				ps.add(field+".days_of_week["+strconv.Itoa(j)+"]", "unknown day %q (mon, tue, wed, thu, fri, sat, sun, or the full lowercase name)", name)
				continue
			}
			days[day] = true
		}
		for _, day := range weekOrder() {
			if days[day] {
				c.DaysOfWeek = append(c.DaysOfWeek, day)
			}
		}
	}

	if zone != "" {
		c.TimeZone = zone
		switch err := checkZone(zone); {
		case err == nil:
		case opts.keepUnknownZones && zone != "Local":
		default:
			ps.add(zoneField, "%s", err)
		}
	}

	if d.SourceIP != nil {
		if len(d.SourceIP) == 0 {
			ps.add(field+".source_ip", "an empty list would never apply: leave it out for any address")
		}
		for j, s := range d.SourceIP {
			pfx, err := parsePrefix(s)
			if err != nil {
				ps.add(field+".source_ip["+strconv.Itoa(j)+"]", "invalid CIDR %q", s)
				continue
			}
			c.SourceIP = append(c.SourceIP, pfx)
		}
	}

	if d.TTLMax != "" {
		ttl, err := time.ParseDuration(d.TTLMax)
		switch {
		case err != nil:
			ps.add(field+".ttl_max", "invalid duration %q (use Go durations: 90s, 15m, 1h30m)", d.TTLMax)
		case ttl <= 0:
			ps.add(field+".ttl_max", "must be positive, got %q", d.TTLMax)
		default:
			c.TTLMax = ttl
		}
	}
	return c
}

// checkZone checks that zone names a time zone that loads here.
func checkZone(zone string) error {
	if zone == "Local" {
		return fmt.Errorf("time zone %q depends on the server: name an IANA zone such as \"Europe/Paris\" or \"UTC\"", zone)
	}
	if _, err := time.LoadLocation(zone); err != nil {
		return fmt.Errorf("unknown time zone %q", zone)
	}
	return nil
}

// parseClock parses "HH:MM", 24-hour, into minutes after midnight.
func parseClock(s string) (int, error) {
	if len(s) != 5 || s[2] != ':' || !isDigit(s[0]) || !isDigit(s[1]) || !isDigit(s[3]) || !isDigit(s[4]) {
		return 0, fmt.Errorf("invalid time %q: use HH:MM, 24-hour (\"08:00\", \"18:30\")", s)
	}
	h := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	if h > 23 || m > 59 {
		return 0, fmt.Errorf("invalid time %q: hours run 00-23 and minutes 00-59", s)
	}
	return h*60 + m, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func formatClock(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// weekOrder is the days of the week, Monday first.
func weekOrder() [7]time.Weekday {
	return [7]time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday}
}

func parseDay(s string) (time.Weekday, bool) {
	for _, d := range weekOrder() {
		full := strings.ToLower(d.String())
		if s == full || s == full[:3] {
			return d, true
		}
	}
	return 0, false
}

func dayName(d time.Weekday) string { return strings.ToLower(d.String()[:3]) }

// parsePrefix parses a CIDR or a bare address, canonically: masked, and
// IPv4-mapped IPv6 networks as IPv4 ones.
func parsePrefix(s string) (netip.Prefix, error) {
	var pfx netip.Prefix
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		pfx = p
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("address %q has a zone", s)
		}
		pfx = netip.PrefixFrom(a, a.BitLen())
	}
	if a := pfx.Addr(); a.Is4In6() && pfx.Bits() >= 96 {
		pfx = netip.PrefixFrom(a.Unmap(), pfx.Bits()-96)
	}
	return pfx.Masked(), nil
}

// Canonical returns p as a JSON document (also valid YAML) that parses to
// a policy equal to p: capabilities in canonical order, the effect and the
// name always written, days as three-letter names, networks masked,
// durations as Go prints them. The built-in root policy has no document
// and gives one with no rules, which does not parse.
func (p *Policy) Canonical() []byte {
	d := document{Name: p.Name, Rules: make([]ruleDoc, len(p.Rules))}
	for i, r := range p.Rules {
		rd := ruleDoc{Path: r.Path, Effect: string(r.Effect), Capabilities: make([]string, len(r.Capabilities))}
		for j, c := range r.Capabilities {
			rd.Capabilities[j] = string(c)
		}
		if c := r.Conditions; !c.empty() || c.TimeZone != "" {
			cd := &conditionsDoc{}
			if c.TimeOfDay != nil {
				cd.TimeOfDay = &timeOfDayDoc{Start: formatClock(c.TimeOfDay.Start), End: formatClock(c.TimeOfDay.End), TimeZone: c.TimeZone}
			} else {
				cd.TimeZone = c.TimeZone
			}
			for _, d := range c.DaysOfWeek {
				cd.DaysOfWeek = append(cd.DaysOfWeek, dayName(d))
			}
			for _, pfx := range c.SourceIP {
				cd.SourceIP = append(cd.SourceIP, pfx.String())
			}
			if c.TTLMax != 0 {
				cd.TTLMax = c.TTLMax.String()
			}
			rd.Conditions = cd
		}
		d.Rules[i] = rd
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		// Only strings, lists and objects: encoding cannot fail.
		panic(fmt.Sprintf("policy: encode canonical document: %v", err))
	}
	return buf.Bytes()
}

// Equal reports whether p and q are the same policy.
func (p *Policy) Equal(q *Policy) bool {
	if p == nil || q == nil {
		return p == q
	}
	return p.Name == q.Name && p.root == q.root && slices.EqualFunc(p.Rules, q.Rules, func(a, b Rule) bool {
		return a.Path == b.Path && a.Effect == b.Effect && slices.Equal(a.Capabilities, b.Capabilities) && a.Conditions.equal(&b.Conditions)
	})
}

func (c *Conditions) equal(d *Conditions) bool {
	if (c.TimeOfDay == nil) != (d.TimeOfDay == nil) || c.TimeOfDay != nil && *c.TimeOfDay != *d.TimeOfDay {
		return false
	}
	return slices.Equal(c.DaysOfWeek, d.DaysOfWeek) && c.TimeZone == d.TimeZone &&
		slices.Equal(c.SourceIP, d.SourceIP) && c.TTLMax == d.TTLMax
}
