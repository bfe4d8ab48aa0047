package api

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a length of time written as Go duration text, the JSON form of
// k8s.io/apimachinery's metav1.Duration that upstream's resources use. It
// reads any text time.ParseDuration accepts ("90s", "1.5m") and is written
// in time.Duration's canonical form, as upstream writes it: "90s" is stored
// as "1m30s" and zero as "0s".
type Duration struct {
	time.Duration
}

// Dur makes a Duration.
func Dur(d time.Duration) *Duration { return &Duration{d} }

// MarshalJSON writes the canonical duration text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.Duration.String()) }

// UnmarshalJSON reads duration text; anything else is an error, as upstream.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("invalid duration %s: want text such as \"90s\"", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: want text such as \"90s\"", s)
	}
	d.Duration = v
	return nil
}

// DSCP is a Differentiated Services code point: a number 0-63 or one of the
// standard names ("AF11", "EF", ...). Like upstream's numorstring.DSCP it
// keeps the form it was written in.
type DSCP struct {
	Num    uint8
	Name   string
	IsName bool
}

// dscpNames are the code point names upstream accepts and their values.
var dscpNames = map[string]uint8{
	"DF": 0, "EF": 46,
	"AF11": 10, "AF12": 12, "AF13": 14,
	"AF21": 18, "AF22": 20, "AF23": 22,
	"AF31": 26, "AF32": 28, "AF33": 30,
	"AF41": 34, "AF42": 36, "AF43": 38,
	"CS0": 0, "CS1": 8, "CS2": 16, "CS3": 24, "CS4": 32, "CS5": 40, "CS6": 48, "CS7": 56,
}

// ParseDSCP reads "46" or "EF".
func ParseDSCP(s string) (DSCP, error) {
	if n, err := strconv.ParseUint(s, 10, 8); err == nil {
		return DSCP{Num: uint8(n)}, nil
	}
	return DSCP{Name: s, IsName: true}, nil
}

// Validate checks the number is 0-63 or the name is a known code point.
func (d DSCP) Validate() error {
	if d.IsName {
		if _, ok := dscpNames[strings.ToUpper(d.Name)]; !ok {
			return fmt.Errorf("unknown DSCP name %q", d.Name)
		}
		return nil
	}
	if d.Num > 63 {
		return fmt.Errorf("DSCP value %d is out of range 0-63", d.Num)
	}
	return nil
}

func (d DSCP) String() string {
	if d.IsName {
		return d.Name
	}
	return strconv.Itoa(int(d.Num))
}

// MarshalJSON writes a name as a string and a number as a number.
func (d DSCP) MarshalJSON() ([]byte, error) {
	if d.IsName {
		return json.Marshal(d.Name)
	}
	return []byte(strconv.Itoa(int(d.Num))), nil
}

// UnmarshalJSON reads a number or a string.
func (d *DSCP) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*d, _ = ParseDSCP(s)
		return nil
	}
	n, err := strconv.ParseUint(string(b), 10, 8)
	if err != nil {
		return fmt.Errorf("invalid DSCP %s: want a number 0-63 or a name", b)
	}
	*d = DSCP{Num: uint8(n)}
	return nil
}
