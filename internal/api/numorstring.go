package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// ASNumber is a BGP AS number. It is written as a JSON number and read from
// a number, a decimal string, or the dotted "asdot" form "1.10" (= 1<<16 + 10).
type ASNumber uint32

// ParseASNumber reads "64512" or "1.10".
func ParseASNumber(s string) (ASNumber, error) {
	if hi, lo, ok := strings.Cut(s, "."); ok {
		h, err1 := strconv.ParseUint(hi, 10, 16)
		l, err2 := strconv.ParseUint(lo, 10, 16)
		if err1 != nil || err2 != nil {
			return 0, fmt.Errorf("invalid AS number %q", s)
		}
		return ASNumber(h<<16 | l), nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid AS number %q", s)
	}
	return ASNumber(n), nil
}

// UnmarshalJSON accepts a number or a string.
func (a *ASNumber) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		n, err := ParseASNumber(s)
		if err != nil {
			return err
		}
		*a = n
		return nil
	}
	n, err := strconv.ParseUint(string(b), 10, 32)
	if err != nil {
		return fmt.Errorf("invalid AS number %s", b)
	}
	*a = ASNumber(n)
	return nil
}

func (a ASNumber) String() string { return strconv.FormatUint(uint64(a), 10) }

// Protocol is an IP protocol: one of the names TCP, UDP, ICMP, ICMPv6, SCTP,
// UDPLite, or a number 1-255. It keeps the form it was written in.
type Protocol struct {
	Num    uint8
	Name   string
	IsName bool
}

// ProtocolFromString makes a named protocol.
func ProtocolFromString(s string) Protocol { return Protocol{Name: s, IsName: true} }

// ProtocolFromInt makes a numbered protocol.
func ProtocolFromInt(n uint8) Protocol { return Protocol{Num: n} }

// protocolNames are the names upstream accepts (case-sensitive as upstream).
var protocolNames = []string{"TCP", "UDP", "ICMP", "ICMPv6", "SCTP", "UDPLite"}

// Validate checks the protocol is a known name or a number 1-255.
func (p Protocol) Validate() error {
	if p.IsName {
		for _, n := range protocolNames {
			if p.Name == n {
				return nil
			}
		}
		return fmt.Errorf("unknown protocol %q: use %s or a number 1-255", p.Name, strings.Join(protocolNames, ", "))
	}
	if p.Num == 0 {
		return fmt.Errorf("protocol number must be 1-255")
	}
	return nil
}

// Number returns the protocol number (TCP=6, ...).
func (p Protocol) Number() uint8 {
	if !p.IsName {
		return p.Num
	}
	switch p.Name {
	case "TCP":
		return 6
	case "UDP":
		return 17
	case "ICMP":
		return 1
	case "ICMPv6":
		return 58
	case "SCTP":
		return 132
	case "UDPLite":
		return 136
	}
	return 0
}

// SupportsPorts reports whether rules with ports make sense for it.
func (p Protocol) SupportsPorts() bool {
	switch p.Number() {
	case 6, 17, 132, 136:
		return true
	}
	return false
}

func (p Protocol) String() string {
	if p.IsName {
		return p.Name
	}
	return strconv.Itoa(int(p.Num))
}

// MarshalJSON writes a name as a string and a number as a number.
func (p Protocol) MarshalJSON() ([]byte, error) {
	if p.IsName {
		return json.Marshal(p.Name)
	}
	return []byte(strconv.Itoa(int(p.Num))), nil
}

// UnmarshalJSON reads a string or a number; a numeric string becomes a number.
func (p *Protocol) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if n, err := strconv.ParseUint(s, 10, 8); err == nil {
			*p = ProtocolFromInt(uint8(n))
			return nil
		}
		*p = ProtocolFromString(s)
		return nil
	}
	n, err := strconv.ParseUint(string(b), 10, 8)
	if err != nil {
		return fmt.Errorf("invalid protocol %s: use a name or a number 1-255", b)
	}
	*p = ProtocolFromInt(uint8(n))
	return nil
}

// Port is a port, a port range "min:max", or a named port. It is written as
// a number when it is a single port and as a string otherwise.
type Port struct {
	MinPort  uint16
	MaxPort  uint16
	PortName string
}

// SinglePort makes a one-port Port.
func SinglePort(p uint16) Port { return Port{MinPort: p, MaxPort: p} }

// ParsePort reads "80", "80:90" or a port name.
func ParsePort(s string) (Port, error) {
	if lo, hi, ok := strings.Cut(s, ":"); ok {
		l, err1 := strconv.ParseUint(lo, 10, 16)
		h, err2 := strconv.ParseUint(hi, 10, 16)
		if err1 != nil || err2 != nil || l > h {
			return Port{}, fmt.Errorf("invalid port range %q: want min:max with min <= max", s)
		}
		return Port{MinPort: uint16(l), MaxPort: uint16(h)}, nil
	}
	if n, err := strconv.ParseUint(s, 10, 16); err == nil {
		return SinglePort(uint16(n)), nil
	}
	if s == "" || strings.ContainsAny(s, " \t") {
		return Port{}, fmt.Errorf("invalid port %q", s)
	}
	return Port{PortName: s}, nil
}

func (p Port) String() string {
	switch {
	case p.PortName != "":
		return p.PortName
	case p.MinPort == p.MaxPort:
		return strconv.Itoa(int(p.MinPort))
	default:
		return fmt.Sprintf("%d:%d", p.MinPort, p.MaxPort)
	}
}

// MarshalJSON writes a single port as a number, else a string.
func (p Port) MarshalJSON() ([]byte, error) {
	if p.PortName == "" && p.MinPort == p.MaxPort {
		return []byte(strconv.Itoa(int(p.MinPort))), nil
	}
	return json.Marshal(p.String())
}

// UnmarshalJSON reads a number or a string form.
func (p *Port) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := ParsePort(s)
		if err != nil {
			return err
		}
		*p = v
		return nil
	}
	n, err := strconv.ParseUint(string(b), 10, 16)
	if err != nil {
		return fmt.Errorf("invalid port %s", b)
	}
	*p = SinglePort(uint16(n))
	return nil
}
