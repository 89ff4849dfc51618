# Neco: build, test, benchmark and demo. Run `make help` for the targets.
#
# Every target installs what it needs, idempotently: Debian packages through
# apt (only the missing ones) and Go tools pinned in go.mod / tools/*.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

GO        ?= go
BIN       := $(CURDIR)/bin
# A release tag (release-YYYY.MM.DD-N, as the CD system expects) names the version.
VERSION   ?= $(or $(patsubst release-%,%,$(shell git describe --tags --match 'release-20*' 2>/dev/null)),$(shell git describe --tags --match '20*' 2>/dev/null),0.0.0-dev)
LDFLAGS   := -X github.com/openneco/neco/pkg/version.Version=$(VERSION)
GOTESTFLAGS ?= -race -timeout 45m
SUITE       ?= .

# Debian packages the tests, the demo and the packaging need.
APT_PACKAGES := bird2 dnsmasq-base busybox-static iproute2 iputils-ping curl jq fakeroot lintian binutils systemd \
	systemd-container debootstrap qemu-system-x86 qemu-utils ovmf ipxe linux-image-amd64 stress-ng zstd openssh-server \
	containernetworking-plugins netcat-openbsd bind9-dnsutils fdisk dosfstools mtools

INOTIFY_INSTANCES := 1024

ETCD_VERSION := $(shell cd tools/etcd && $(GO) list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)

.PHONY: help
help: ## Show this help.
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

.PHONY: setup
setup: ## Install the Debian packages the tests need (only those missing).
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@# The machines' systemd, containerd and kubelets share the host's per-user
	@# inotify instances (128 by default: not enough for a few Kubernetes nodes).
	@if [ "$$(cat /proc/sys/fs/inotify/max_user_instances)" -lt $(INOTIFY_INSTANCES) ]; then \
		sysctl -qw fs.inotify.max_user_instances=$(INOTIFY_INSTANCES); fi

.PHONY: build
build: etcd ## Build every binary into bin/.
	GOBIN=$(BIN) $(GO) install -ldflags "$(LDFLAGS)" ./cmd/...

.PHONY: etcd
etcd: $(BIN)/etcd $(BIN)/etcdctl ## Build the pinned etcd server and etcdctl into bin/.

$(BIN)/etcd: tools/etcd/go.mod
	cd tools/etcd && $(GO) build -o $@ go.etcd.io/etcd/server/v3
	@$@ --version | sed -n 1p  # sed reads to the end: head could SIGPIPE etcd under pipefail

$(BIN)/etcdctl: tools/etcd/go.mod
	cd tools/etcd && $(GO) build -o $@ go.etcd.io/etcd/etcdctl/v3

.PHONY: vault
vault: $(BIN)/vault ## Build the pinned Vault server into bin/ (~5 min the first time; only when tools/vault changes).

$(BIN)/vault: tools/vault/go.mod tools/vault/go.sum
	cd tools/vault && $(GO) build -o $@ github.com/hashicorp/vault
	@$@ version

# Kubernetes, pinned in tools/kubernetes: one multi-call executable (kube;
# kubelet, kube-apiserver, ... kubectl are names for it). The version and the
# module's date are stamped, as upstream's release builds do.
KUBE_VERSION := $(shell cd tools/kubernetes && $(GO) list -m -f '{{.Version}}' k8s.io/kubernetes)
KUBE_DATE    := $(shell cd tools/kubernetes && $(GO) list -m -f '{{with .Time}}{{.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' k8s.io/kubernetes)
KUBE_SEMVER  := $(subst ., ,$(patsubst v%,%,$(KUBE_VERSION)))
KUBE_LDFLAGS := -s -w $(foreach kv,gitVersion=$(KUBE_VERSION) gitMajor=$(word 1,$(KUBE_SEMVER)) gitMinor=$(word 2,$(KUBE_SEMVER)) \
	gitTreeState=clean buildDate=$(KUBE_DATE),-X k8s.io/component-base/version.$(kv))
KUBE_COMPONENTS := kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl

.PHONY: kube
kube: $(BIN)/kube ## Build the pinned Kubernetes (one executable, ~10 min the first time; only when tools/kubernetes changes).

$(BIN)/kube: tools/kubernetes/go.mod tools/kubernetes/go.sum tools/kubernetes/kube/main.go
	cd tools/kubernetes && CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(KUBE_LDFLAGS)' -o $@ ./kube
	for c in $(KUBE_COMPONENTS); do ln -sf kube $(BIN)/$$c; done
	@$(BIN)/kubectl version --client | sed -n 1p

# The registry's images (pkg/images, docs/kubernetes-artifacts.md): pause and
# CoreDNS (pinned in tools/coredns) built here, agnhost from the pinned
# Kubernetes, busybox from Debian's busybox-static; all static.
COREDNS_VERSION = $(shell cd tools/coredns && $(GO) list -m -f '{{.Version}}' github.com/coredns/coredns)

.PHONY: pause
pause: $(BIN)/pause ## Build the pod sandbox's pause program into bin/.

$(BIN)/pause: tools/pause/main.go
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $@ ./tools/pause

.PHONY: coredns
coredns: $(BIN)/coredns ## Build the pinned CoreDNS into bin/ (~3 min the first time; only when tools/coredns changes).

$(BIN)/coredns: tools/coredns/go.mod tools/coredns/go.sum tools/coredns/main.go
	cd tools/coredns && CGO_ENABLED=0 $(GO) build -trimpath -tags grpcnotrace -o $@ \
		-ldflags '-s -w $(foreach v,GitCommit gitTag,-X github.com/coredns/coredns/coremain.$(v)=$(COREDNS_VERSION))' .
	@$@ -version | sed -n 1p

.PHONY: agnhost
agnhost: $(BIN)/agnhost ## Build the pinned Kubernetes' agnhost (conformance tests' image) into bin/.

$(BIN)/agnhost: tools/kubernetes/go.mod tools/kubernetes/go.sum
	cd tools/kubernetes && CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o ../../bin/agnhost k8s.io/kubernetes/test/images/agnhost

.PHONY: e2e
e2e: $(BIN)/e2e.test $(BIN)/ginkgo ## Build the pinned Kubernetes' end-to-end suite (e2e.test, ~7 min the first time) and the ginkgo CLI.

$(BIN)/e2e.test: tools/kubernetes/go.mod tools/kubernetes/go.sum
	cd tools/kubernetes && CGO_ENABLED=0 $(GO) test -c -trimpath -ldflags '$(KUBE_LDFLAGS)' -o ../../bin/e2e.test k8s.io/kubernetes/test/e2e

$(BIN)/ginkgo: tools/kubernetes/go.mod tools/kubernetes/go.sum
	cd tools/kubernetes && CGO_ENABLED=0 $(GO) build -trimpath -o ../../bin/ginkgo github.com/onsi/ginkgo/v2/ginkgo

# Debian's nginx for the nginx images: the packages are downloaded and
# unpacked into build/nginx (their .deb files in build/nginx/debs), not
# installed, since installing would start a web server on this host.
NGINX_ROOT := $(CURDIR)/build/nginx

$(NGINX_ROOT)/usr/sbin/nginx:
	rm -rf $(NGINX_ROOT).tmp && mkdir -p $(NGINX_ROOT).tmp/debs
	cd $(NGINX_ROOT).tmp/debs && { apt-get download -qq -o APT::Sandbox::User=root nginx nginx-common 2>/dev/null || \
		{ apt-get update -qq && apt-get download -qq -o APT::Sandbox::User=root nginx nginx-common; }; }
	for d in $(NGINX_ROOT).tmp/debs/*.deb; do dpkg-deb -x $$d $(NGINX_ROOT).tmp; done
	rm -rf $(NGINX_ROOT) && mv $(NGINX_ROOT).tmp $(NGINX_ROOT)

$(BIN)/nonewprivs: tools/kubernetes/go.mod tools/kubernetes/go.sum
	cd tools/kubernetes && CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $@ k8s.io/kubernetes/test/images/nonewprivs

.PHONY: images
images: setup $(BIN)/pause $(BIN)/agnhost $(BIN)/coredns $(BIN)/nonewprivs $(NGINX_ROOT)/usr/sbin/nginx ## Build the registry's images (pause, CoreDNS, the conformance tests' busybox, agnhost, nginx, kitten, nautilus, nonroot, nonewprivs, glibc-dns-testing) into the OCI layout build/images.
	$(GO) run ./tools/imagebuild -pause $(BIN)/pause -agnhost $(BIN)/agnhost -coredns $(BIN)/coredns -busybox /bin/busybox \
		-nonewprivs $(BIN)/nonewprivs -nginx $(NGINX_ROOT) \
		-agnhost-tool /usr/bin/curl=/usr/bin/curl -agnhost-tool /usr/bin/nc=/usr/bin/nc.openbsd -agnhost-tool /bin/sh=/usr/bin/dash \
		-agnhost-tool /usr/bin/dig=/usr/bin/dig -agnhost-tool /usr/bin/getent=/usr/bin/getent \
		-dns-testing-tool /usr/bin/dig=/usr/bin/dig -dns-testing-tool /usr/bin/getent=/usr/bin/getent \
		-test-images "$$(cd tools/kubernetes && $(GO) list -m -f '{{.Dir}}' k8s.io/kubernetes)/test/images" -out build/images

.PHONY: lint
lint: ## gofmt, go vet, staticcheck and a go.mod tidiness check.
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags dctest ./dctest/...
	$(GO) tool staticcheck ./...
	$(GO) tool staticcheck -tags dctest ./dctest/...
	@cp go.mod /tmp/go.mod.lint; cp go.sum /tmp/go.sum.lint; \
	$(GO) mod tidy; \
	if ! git diff --no-index --quiet /tmp/go.mod.lint go.mod || ! git diff --no-index --quiet /tmp/go.sum.lint go.sum; then \
		echo "go.mod/go.sum are not tidy: run go mod tidy"; git diff --no-index /tmp/go.mod.lint go.mod || true; exit 1; fi

.PHONY: test
test: setup etcd vault kube images lint ## Lint, then every test (unit, integration, network namespaces, the engine's nspawn cluster) with -race.
	PATH=$(BIN):$$PATH $(GO) test $(GOTESTFLAGS) ./...

.PHONY: bench
bench: setup etcd vault images ## Run the benchmarks; see docs/benchmarks.md.
	PATH=$(BIN):$$PATH $(GO) test -run '^$$' -bench . -benchmem -timeout 60m ./...

.PHONY: dctest
dctest: setup etcd vault kube images e2e ## Large tests on the virtual data center (root); SUITE=<go test -run pattern> picks suites; see docs/dctest.md.
	PATH=$(BIN):$$PATH $(GO) test -tags dctest -count=1 -timeout $(or $(DCTEST_TIMEOUT),60m) -v -run '$(SUITE)' ./dctest/ 2>&1 \
		| grep -vE '^\s+\S+_test.go:[0-9]+: (namespace|nspawn node|qemu node) '

.PHONY: conformance
conformance: setup etcd vault kube images e2e ## Every upstream [Conformance] test this data center's images allow, on its cluster (root; see docs/conformance.md).
	CONFORMANCE=full $(MAKE) dctest SUITE=TestConformance DCTEST_TIMEOUT=4h

.PHONY: under-load
under-load: setup etcd vault ## Run CMD COUNT times (10) beside stress-ng --cpu LOAD (16) and count passes, e.g. CMD='make dctest SUITE=Bootstrap'.
	tools/underload -n $(or $(COUNT),10) -l $(or $(LOAD),16) -- $(CMD)

.PHONY: demo
demo: setup etcd vault kube images ## Build the default virtual data center, bootstrap neco in it, show what runs (root; make demo-stop).
	$(GO) build -o $(BIN)/vdc ./cmd/vdc
	$(GO) run ./demo/dc up

.PHONY: demo-status
demo-status: ## Show the demo data center again.
	$(GO) run ./demo/dc status

.PHONY: demo-stop
demo-stop: ## Remove the demo data center; nothing is left behind.
	$(GO) run ./demo/dc down

.PHONY: demo-sabakan
demo-sabakan: setup build ## A small demo of the boot server alone: etcd and sabakan on loopback, a sample inventory.
	./demo/demo.sh start

.PHONY: demo-sabakan-stop
demo-sabakan-stop: ## Stop the sabakan demo and remove its data.
	./demo/demo.sh stop

DEB_BIN := $(CURDIR)/build/deb-bin

.PHONY: deb
deb: setup etcd vault kube images ## Build neco_$(VERSION)_amd64.deb: every ./cmd/... binary (static), etcd, etcdctl, vault, Kubernetes, the images; see docs/cd.md.
	rm -rf $(DEB_BIN) && mkdir -p $(DEB_BIN)
	CGO_ENABLED=0 GOBIN=$(DEB_BIN) $(GO) install -trimpath -ldflags "$(LDFLAGS) -s -w" ./cmd/...
	cp $(BIN)/etcd $(BIN)/etcdctl $(BIN)/vault $(DEB_BIN)/
	ln -f $(BIN)/kube $(CURDIR)/build/kube-$(KUBE_VERSION)
	./debian/build.sh $(VERSION) $(DEB_BIN) $(CURDIR) $(CURDIR)/build/kube-$(KUBE_VERSION) $(CURDIR)/build/images
	lintian --fail-on error $(CURDIR)/neco_$(VERSION)_amd64.deb

INSTALLER_IMAGE ?= $(CURDIR)/build/neco-boot-$(VERSION).img

.PHONY: installer
installer: deb ## Build the boot server's UEFI disk image build/neco-boot-$(VERSION).img from the package (root; SSH_KEYS=<authorized_keys file>, NTP=<server>; see docs/installer.md).
	$(GO) build -o $(BIN)/neco-installer ./cmd/neco-installer
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct) $(BIN)/neco-installer build --deb $(CURDIR)/neco_$(VERSION)_amd64.deb \
		--out $(INSTALLER_IMAGE) $(if $(SSH_KEYS),--ssh-keys $(SSH_KEYS)) $(if $(NTP),--ntp $(NTP))

.PHONY: clean
clean: ## Remove build output.
	rm -rf $(BIN)
