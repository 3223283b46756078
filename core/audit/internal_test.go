package audit

import "testing"

// QueueLen returns how many events wait for l's writer, for tests that
// must know an event is queued.
func QueueLen(l *Log) int { return len(l.queue) }

func TestSameJSON(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		a, b string
		want bool
	}{
		"identical":                  {`{"a":1}`, `{"a":1}`, true},
		"member order":               {`{"a":1,"b":"x"}`, `{"b":"x","a":1}`, true},
		"white space":                {`{"a": [1, 2]}`, `{"a":[1,2]}`, true},
		"exponent vs plain":          {`{"n":1e+21}`, `{"n":1000000000000000000000}`, true},
		"trailing zeros":             {`{"n":1.50}`, `{"n":1.5}`, true},
		"negative zero":              {`{"n":-0}`, `{"n":0.0}`, true},
		"small exponent":             {`{"n":1.25e-3}`, `{"n":0.00125}`, true},
		"huge exponents, no hanging": {`{"n":1e999999999999}`, `{"n":10e999999999998}`, true},
		"different numbers":          {`{"n":1}`, `{"n":2}`, false},
		"sign":                       {`{"n":-1}`, `{"n":1}`, false},
		"different string":           {`{"p":"a"}`, `{"p":"b"}`, false},
		"extra member":               {`{"a":1}`, `{"a":1,"b":null}`, false},
		"number vs string":           {`{"a":1}`, `{"a":"1"}`, false},
		"array order":                {`[1,2]`, `[2,1]`, false},
		"not json":                   {`{"a":`, `{"a":1}`, false},
		"two values":                 {`{} {}`, `{}`, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := sameJSON([]byte(tc.a), []byte(tc.b)); got != tc.want {
				t.Errorf("sameJSON(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
			if got := sameJSON([]byte(tc.b), []byte(tc.a)); got != tc.want {
				t.Errorf("sameJSON(%s, %s) = %v, want %v", tc.b, tc.a, got, tc.want)
			}
		})
	}
}
