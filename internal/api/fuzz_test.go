package api

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeValidate feeds arbitrary bytes to every kind as the datastore
// and calicoctl would: strict JSON decode, Default, Validate. None of these
// may panic, Default must be idempotent, and an object that validates must
// survive Encode -> Decode -> Encode unchanged (a fixed point), so what is
// written is what is read back.
func FuzzDecodeValidate(f *testing.F) {
	for _, dir := range []string{"testdata/upstream", "testdata/samples"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		for _, file := range files {
			if b, err := os.ReadFile(file); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte(`{"metadata":{"name":"x"},"spec":{}}`))
	f.Add([]byte(`{"metadata":{"name":"default"},"spec":{"routeTableRange":{"min":1,"max":250},"failsafeInboundHostPorts":[]}}`))
	f.Add([]byte(`{"metadata":{"name":"t.p"},"spec":{"tier":"t","egress":[{"action":"Deny","destination":{"notNets":["::/0"]}}]}}`))
	kinds := Kinds()
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, k := range kinds {
			r := k.New()
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.DisallowUnknownFields()
			if dec.Decode(r) != nil {
				continue
			}
			tm := r.GetTypeMeta()
			tm.Kind, tm.APIVersion = k.Kind, APIVersion
			Default(r)
			once, err := json.Marshal(r)
			if err != nil {
				t.Fatalf("%s: encode after Default: %v", k.Kind, err)
			}
			Default(r)
			if twice, _ := json.Marshal(r); !bytes.Equal(once, twice) {
				t.Fatalf("%s: Default is not idempotent\n%s\n%s", k.Kind, once, twice)
			}
			if Validate(r) != nil {
				continue
			}
			r2 := k.New()
			if err := json.Unmarshal(once, r2); err != nil {
				t.Fatalf("%s: our own encoding does not decode: %v\n%s", k.Kind, err, once)
			}
			Default(r2)
			again, err := json.Marshal(r2)
			if err != nil {
				t.Fatalf("%s: re-encode: %v", k.Kind, err)
			}
			if !bytes.Equal(once, again) {
				t.Fatalf("%s: encode/decode is not a fixed point\n%s\n%s", k.Kind, once, again)
			}
			if err := Validate(r2); err != nil {
				t.Fatalf("%s: valid object no longer validates after a round trip: %v\n%s", k.Kind, err, once)
			}
		}
	})
}

// FuzzFelixSet feeds arbitrary FELIX_* keys and values to Set: it must never
// panic, and whatever it accepts must encode and decode back unchanged.
func FuzzFelixSet(f *testing.F) {
	for k, v := range map[string]string{
		"FELIX_IPINIPMTU": "1400", "FELIX_ROUTEREFRESHINTERVAL": "30s", "FELIX_FAILSAFEINBOUNDHOSTPORTS": "tcp:[fd00::/8]:22",
		"FELIX_ROUTETABLERANGES": "1-250", "FELIX_BPFLOGFILTERS": "all=x", "FELIX_HEALTHTIMEOUTOVERRIDES": "a=1s",
		"FELIX_BPFCONNTRACKTIMEOUTS": "tcpSynSent=Auto", "FELIX_KUBENODEPORTRANGES": "1:2,3", "FELIX_ISTIODSCPMARK": "46",
		"FELIX_IPTABLESMARKMASK": "0xffff0000", "FELIX_REPORTINGINTERVALSECS": "1.5", "FELIX_NATPORTRANGE": `{"x":1}`,
	} {
		f.Add(k, v)
	}
	f.Fuzz(func(t *testing.T, key, value string) {
		var s FelixConfigurationSpec
		if s.Set(key, value) != nil {
			return
		}
		fc := NewFelixConfiguration()
		fc.Name = "default"
		fc.Spec = s
		_ = fc.Validate()
		once, err := json.Marshal(fc)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		back := NewFelixConfiguration()
		if err := json.Unmarshal(once, back); err != nil {
			t.Fatalf("%s=%q encodes to %s, which does not decode: %v", key, value, once, err)
		}
		if again, _ := json.Marshal(back); !bytes.Equal(once, again) {
			t.Fatalf("%s=%q: not a fixed point\n%s\n%s", key, value, once, again)
		}
	})
}

// FuzzRule decodes one policy rule as calicoctl does (strictly) and
// validates it as an ingress and an egress rule: never a panic, and a rule
// that validates re-encodes to a fixed point.
func FuzzRule(f *testing.F) {
	for _, s := range []string{
		`{"action":"Allow","protocol":"TCP","source":{"selector":"app == 'x'","ports":["http",80,"1:2"]},"destination":{}}`,
		`{"action":"Deny","ipVersion":6,"destination":{"nets":["fd00::/8"],"notNets":["fd00:1::/32"]},"source":{}}`,
		`{"action":"Pass","protocol":"ICMP","icmp":{"type":8,"code":0},"notICMP":{"type":3},"source":{"namespaceSelector":"global()"},"destination":{}}`,
		`{"action":"Allow","http":{"methods":["GET"]},"source":{"services":{"name":"s"}},"destination":{}}`,
		`{"action":"Log","notProtocol":17,"source":{"serviceAccounts":{"names":["a"],"selector":"all()"}},"destination":{"notPorts":[22]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Rule
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if dec.Decode(&r) != nil {
			return
		}
		for _, field := range []string{"spec.ingress", "spec.egress"} {
			if ValidateRules(field, []Rule{r}) != nil {
				continue
			}
			if r.HTTP != nil || r.Source.Services != nil || r.Destination.Services != nil {
				t.Fatalf("an http/services rule validated: %s", data)
			}
			once, err := json.Marshal(r)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			var back Rule
			if err := json.Unmarshal(once, &back); err != nil {
				t.Fatalf("our encoding does not decode: %v\n%s", err, once)
			}
			if again, _ := json.Marshal(back); !bytes.Equal(once, again) {
				t.Fatalf("not a fixed point\n%s\n%s", once, again)
			}
		}
	})
}
