package policy

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Condition names, as in documents, decisions and traces.
const (
	CondTimeOfDay  = "time_of_day"
	CondDaysOfWeek = "days_of_week"
	CondSourceIP   = "source_ip"
	CondTTLMax     = "ttl_max"
)

// condState is the outcome of one condition.
type condState uint8

const (
	condTrue condState = iota
	condFalse
	// condUnknown: the condition cannot be evaluated; it counts as deny.
	condUnknown
)

// condition is one compiled condition of a rule.
type condition struct {
	name string

	// time_of_day and days_of_week
	window   TimeOfDay
	days     uint8          // bit d for time.Weekday d
	dayNames string         // "mon,tue", for traces
	loc      *time.Location // nil when the zone did not load
	zone     string         // for traces: "UTC" when none was given
	zoneErr  string         // why loc is nil

	// source_ip
	prefixes []netip.Prefix

	// ttl_max
	ttlMax time.Duration
}

// compileConditions turns c into the conditions to check, loading its time
// zone through zones (shared by one ACL's rules, so a zone loads once).
func compileConditions(c *Conditions, zones map[string]zoneResult) []condition {
	if c.empty() {
		return nil
	}
	var loc *time.Location
	var zone, zoneErr string
	if c.TimeOfDay != nil || c.DaysOfWeek != nil {
		zone = c.TimeZone
		if zone == "" {
			zone, loc = "UTC", time.UTC
		} else {
			z, ok := zones[zone]
			if !ok {
				z = loadZone(zone)
				zones[zone] = z
			}
			loc, zoneErr = z.loc, z.err
		}
	}
	var out []condition
	if c.TimeOfDay != nil {
		out = append(out, condition{name: CondTimeOfDay, window: *c.TimeOfDay, loc: loc, zone: zone, zoneErr: zoneErr})
	}
	if c.DaysOfWeek != nil {
		cond := condition{name: CondDaysOfWeek, loc: loc, zone: zone, zoneErr: zoneErr}
		names := make([]string, len(c.DaysOfWeek))
		for i, d := range c.DaysOfWeek {
			cond.days |= 1 << d
			names[i] = dayName(d)
		}
		cond.dayNames = strings.Join(names, ",")
		out = append(out, cond)
	}
	if c.SourceIP != nil {
		out = append(out, condition{name: CondSourceIP, prefixes: c.SourceIP})
	}
	if c.TTLMax != 0 {
		out = append(out, condition{name: CondTTLMax, ttlMax: c.TTLMax})
	}
	return out
}

// zoneResult is a time zone loaded once per ACL.
type zoneResult struct {
	loc *time.Location
	err string
}

func loadZone(zone string) zoneResult {
	if zone == "Local" {
		return zoneResult{err: `time zone "Local" is not allowed`}
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return zoneResult{err: fmt.Sprintf("time zone %q cannot be loaded", zone)}
	}
	return zoneResult{loc: loc}
}

// eval evaluates c for req. why explains the outcome: always for
// condUnknown (it becomes the decision's reason), and for the others only
// when explain is set, so the fast path does not format strings.
func (c *condition) eval(req *Request, explain bool) (st condState, why string) {
	switch c.name {
	case CondTimeOfDay, CondDaysOfWeek:
		if c.loc == nil {
			return condUnknown, c.zoneErr
		}
		if req.Time.IsZero() {
			return condUnknown, "request time unknown"
		}
		t := req.Time.In(c.loc)
		if c.name == CondTimeOfDay {
			m := t.Hour()*60 + t.Minute()
			ok := c.window.contains(m)
			if explain {
				rel := "within"
				if !ok {
					rel = "outside"
				}
				why = fmt.Sprintf("%s in %s is %s %s", formatClock(m), c.zone, rel, c.window)
			}
			return stateOf(ok), why
		}
		day := t.Weekday()
		ok := c.days&(1<<day) != 0
		if explain {
			rel := "one of"
			if !ok {
				rel = "not one of"
			}
			why = fmt.Sprintf("%s in %s is %s %s", dayName(day), c.zone, rel, c.dayNames)
		}
		return stateOf(ok), why

	case CondSourceIP:
		if !req.ClientAddr.IsValid() {
			return condUnknown, "client address unknown"
		}
		addr := req.ClientAddr.Unmap().WithZone("")
		for _, p := range c.prefixes {
			if p.Contains(addr) {
				if explain {
					why = fmt.Sprintf("%s is in %s", addr, p)
				}
				return condTrue, why
			}
		}
		if explain {
			names := make([]string, len(c.prefixes))
			for i, p := range c.prefixes {
				names[i] = p.String()
			}
			why = fmt.Sprintf("%s is in none of %s", addr, strings.Join(names, ", "))
		}
		return condFalse, why

	case CondTTLMax:
		switch {
		case req.TTL < 0:
			return condUnknown, "requested TTL is negative"
		case req.TTL == 0:
			if explain {
				why = "no TTL requested"
			}
			return condTrue, why
		case req.TTL <= c.ttlMax:
			if explain {
				why = fmt.Sprintf("requested TTL %s is at most %s", req.TTL, c.ttlMax)
			}
			return condTrue, why
		default:
			if explain {
				why = fmt.Sprintf("requested TTL %s exceeds %s", req.TTL, c.ttlMax)
			}
			return condFalse, why
		}
	}
	// Only compileConditions makes conditions; an unknown one fails closed.
	return condUnknown, "unknown condition"
}

func stateOf(ok bool) condState {
	if ok {
		return condTrue
	}
	return condFalse
}
