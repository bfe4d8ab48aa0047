package selector

import "testing"

// benchSelectors are typical shapes: a pool nodeSelector, a policy
// selector, and a larger rule selector.
var benchSelectors = []struct{ name, sel string }{
	{"all", "all()"},
	{"eq", `role == "frontend"`},
	{"policy", `projectcalico.org/namespace == "prod" && app in {"web", "api", "db"} && !has(quarantine)`},
	{"complex", `(tier == "a" || tier starts with "b") && env not in {"dev", "test"} && ` +
		`(region ends with "-1" || !(zone contains "x")) && has(team) && owner != "nobody"`},
}

func BenchmarkParse(b *testing.B) {
	for _, bc := range benchSelectors {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(bc.sel); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkValidate(b *testing.B) {
	sel := benchSelectors[3].sel
	b.ReportAllocs()
	for b.Loop() {
		if err := Validate(sel); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEvaluate(b *testing.B) {
	labels := Labels{
		"projectcalico.org/namespace": "prod", "app": "api", "role": "frontend",
		"tier": "bronze", "env": "prod", "region": "eu-west-1", "zone": "eu-west-1a",
		"team": "net", "owner": "alice", "pod-template-hash": "5d8f9c7b6",
	}
	for _, bc := range benchSelectors {
		sel := MustParse(bc.sel)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sel.Evaluate(labels)
			}
		})
	}
}

func BenchmarkString(b *testing.B) {
	sel := benchSelectors[3].sel
	b.ReportAllocs()
	for b.Loop() {
		// A fresh selector each time: String and UniqueID are cached.
		s := MustParse(sel)
		_ = s.UniqueID()
	}
}
