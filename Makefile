# The two commands a fresh machine needs:
#   make demo   builds lghsctl, starts the lab and runs `lghsctl up` on it
#   make test   installs what the tests need, then runs every test
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/lghs/lghsctl/internal/cli.Version=$(VERSION)

.PHONY: build test unit demo lab-stop clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/lghsctl ./cmd/lghsctl

# Every test, lab tests included (they need root; with CI=true a lab test
# that cannot run fails instead of skipping).
test:
	./scripts/setup.sh
	$(GO) vet ./...
	$(GO) test -timeout 80m ./...

# Hermetic unit tests only (no lab), a few seconds.
unit:
	$(GO) test -short ./...

demo: build
	./scripts/demo.sh

lab-stop: build
	./bin/lghsctl lab stop -i examples/lab/inventory.yaml

clean:
	rm -rf bin
