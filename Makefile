# Calico node networking as one static binary.
# The two commands a new user needs: `make demo` and `make test`.

PKG      := github.com/onecalico/calico
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X $(PKG)/internal/version.Version=$(VERSION) -X $(PKG)/internal/version.Commit=$(COMMIT)
GO       ?= go
# Test packages run one at a time by default: the kernel and multi-node tests
# are heavy and the reference machine has two cores.
TESTFLAGS ?= -count=1 -p 1 -timeout 30m

.PHONY: all build links test lint demo demo-bgp bench scale clean

all: build

build: links

# The etcd server is a separate program embedded in bin/calico (see
# applets/etcd/etcd.go for why); build and compress it first. Compressing
# is skipped when neither the program nor the .gz changed since the last
# time (their checksums are kept in out/; go build touches the program even
# when it does not relink, so mtimes cannot tell). gzip -6 takes 60% of
# -9's time (2.5 s against 4.1 s on the loaded 2-core VM) for 61 KB more.
applets/etcd/embedded/etcd-server.gz: FORCE
	@mkdir -p out
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o out/etcd-server ./applets/etcd/serverprog
	@sha256sum --quiet --status -c out/etcd-server.sums 2>/dev/null || { \
	  echo "gzip -6 -n -c out/etcd-server > $@"; \
	  gzip -6 -n -c out/etcd-server > $@.tmp && mv $@.tmp $@ && sha256sum out/etcd-server $@ > out/etcd-server.sums; }

bin/calico: applets/etcd/embedded/etcd-server.gz FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/calico .
	@file bin/calico | grep -q "statically linked" || { echo "bin/calico is not statically linked"; exit 1; }

links: bin/calico
	ln -sf calico bin/calico-ipam
	ln -sf calico bin/calico-node
	ln -sf calico bin/calicoctl

test: build
	CALICO_BIN=$(CURDIR)/bin $(GO) test $(TESTFLAGS) ./...

lint:
	@bad=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$bad" ]; then echo "gofmt needed: $$bad"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags nogobgp ./...
	scripts/lint-deps.sh

# Benchmarks print figures (b.ReportMetric), not pass/fail. Each does its
# own sampling per iteration, hence -benchtime 1x; packages run one at a
# time (-p 1) so that timings and throughput are not disturbed by another
# package's benchmark. The lab benchmarks need root, as the tests do.
bench: build
	CALICO_BIN=$(CURDIR)/bin $(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -p 1 -timeout 60m ./...

# The scale harness (internal/scale, docs/scale.md): for each N in SCALE_N,
# N node agents in this process against a fresh 3-member etcd cluster,
# measured; prints the tables and rewrites docs/scale.md's figures and the
# plots. Needs root (the cluster's namespace). `make test` runs only its
# N=10 smoke test.
SCALE_N ?= 100,300,1000
scale: build
	CALICO_BIN=$(CURDIR)/bin SCALE_N=$(SCALE_N) SCALE_DOCS=$(CURDIR)/docs $(GO) test -run '^TestScale$$' -count 1 -v -timeout 180m ./internal/scale

# demo.sh checks for the tools it needs (installing missing Debian
# packages) before it runs `make build` itself.
demo:
	scripts/demo.sh

# The same three nodes on one subnet, routed by BGP (scripts/demo-bgp.sh).
demo-bgp:
	scripts/demo-bgp.sh

clean:
	rm -rf bin out applets/etcd/embedded/etcd-server.gz

FORCE:
