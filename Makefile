# synprobe. `make demo` runs an audit against a disposable lab target;
# `make test` runs every test (privileged ones skip, with a reason, without root).
GO        ?= go
export GOTOOLCHAIN := local
BIN       := bin/synprobe
STATIC    := bin/synprobe-static
PKGS      := ./...
STATICCHECK_VERSION := v0.6.1

.PHONY: all build static demo test test-short lint bench fuzz clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/synprobe

# The binary of deploy/Dockerfile's image (FROM scratch): no cgo, so
# nothing is linked at run time; deploy/kubernetes/validate checks it.
static:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(STATIC) ./cmd/synprobe

demo: build
	./$(BIN) lab

# A fleet run end to end on the scale lab (root): sweep, audit of what
# answered, summary.
fleet-demo:
	./scripts/fleet-demo.sh

test:
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 30m $(PKGS)
	cd deploy/kubernetes/validate && $(GO) vet ./... && $(GO) test -count=1 ./...

test-short:
	$(GO) test -short -count=1 $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

# Go benchmarks (codec, pcap, analysis, the runner's throughput, the
# audit's wall time against the lab), then synprobe analyze against tshark
# on a large capture (installs Debian's tshark if missing), synprobe trace
# against traceroute -T on the path bed, and synprobe
# sweep against masscan on the scale lab (installs masscan if missing), and
# audit --targets over 1,000 scale-lab addresses with the memory of 1k and
# 100k targets (issue 12's requirements beside the figures).
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)
	./scripts/bench-analyze.sh
	./scripts/bench-trace.sh
	./scripts/bench-sweep.sh
	./scripts/bench-fleet.sh

# A short run of every fuzz target (FUZZTIME each).
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin
