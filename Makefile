# Switchboard: the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
PKGS    ?= ./...
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: run build test test-short bench lint fuzz clean

## run: build and serve the embedded default (SQLite, in-process routing, demo instance) on :8080
run:
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/switchboard serve

## build: build bin/switchboard
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/switchboard ./cmd/switchboard

## test: the whole suite, with the race detector. Postgres and Redis tests
## skip with a message when the servers are not reachable, unless CI=true.
test:
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

## test-short: the suite without the slow end-to-end process tests
test-short:
	$(GO) test -short -count=1 $(PKGS)

## bench: the benchmarks recorded in docs/benchmarks.md
bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 $(PKGS)

## lint: gofmt, go vet, staticcheck (pinned in go.mod as a tool)
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)

## fuzz: run every fuzz target for FUZZTIME each (default 10s)
FUZZTIME ?= 10s
fuzz:
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin data
