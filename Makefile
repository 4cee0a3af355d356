# Two entry points: `make demo` provisions a local systemd container with
# playbooks/site.yml and shows the stack answering; `make test` runs every test.
# Both set up what they need from scratch: venv, collections, Docker, images.

# The controller's Python: PYTHON=..., else the newest of 3.13, 3.12 and 3.11
# (the versions ansible-core 2.19 runs on) that runs from PATH.
ifeq ($(origin PYTHON), undefined)
PYTHON := $(shell for v in 3.13 3.12 3.11; do python$$v -c '' >/dev/null 2>&1 && { echo python$$v; break; }; done)
endif
VENV ?= .venv
DEMO_CONTAINER ?= flaskstack-demo
# The demo's image (tag:suite), built alone: a supported Debian release.
DEMO_IMAGE_ENTRY ?= debian12:bookworm
DEMO_IMAGE = flaskstack/systemd:$(firstword $(subst :, ,$(DEMO_IMAGE_ENTRY)))
# tag:suite[:variant]. sid-ssh: Debian unstable (Oracle MySQL's mysql-server),
# reached over SSH as a sudo user (molecule/oracle-mysql).
IMAGES := debian12:bookworm debian13:trixie sid-ssh:sid:ssh

BIN := $(abspath $(VENV))/bin
# molecule calls ansible-config and friends: the venv's tools must come first.
export PATH := $(BIN):$(PATH)
export ANSIBLE_FORCE_COLOR ?= false
export PY_COLORS ?= 0

# systemd in a container without --privileged (see molecule/default/molecule.yml).
DOCKER_SYSTEMD_FLAGS := --tmpfs /run --tmpfs /run/lock --cgroupns host \
	-v /sys/fs/cgroup:/sys/fs/cgroup:rw --security-opt seccomp=unconfined \
	--security-opt apparmor=unconfined --tty \
	$(addprefix --cap-add ,SYS_ADMIN NET_ADMIN SYS_PTRACE SYS_NICE IPC_LOCK SYS_CHROOT AUDIT_CONTROL)

.PHONY: help venv collections collection docker images lint unit molecule test demo demo-destroy lab bench clean

help:
	@echo "make demo          provision a local container with playbooks/site.yml and show the stack"
	@echo "make demo-destroy  remove the demo container"
	@echo "make lab           on the demo: the write-up's experiment, drawn in docs/lab.md and docs/lab.png"
	@echo "make test          lint, unit tests and both molecule scenarios (side by side)"
	@echo "make bench         provisioning and stack benchmarks, written to docs/benchmarks.md"
	@echo "make collection    build the collection flaskstack.stack into .cache/collection/"

# The pins installed, then compiled on every core at once (pip compiles one file
# after another, a third of the install's time). Not the bundled collections:
# Ansible's collection loader compiles their source itself and never reads a .pyc.
$(BIN)/.installed: requirements.txt
	@[ -n "$(PYTHON)" ] || { echo "No Python 3.11, 3.12 or 3.13 runs from PATH: install one, or set PYTHON=/path/to/python3.x" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' || \
	    { echo "$(PYTHON) is not Python 3.11-3.13, which ansible-core 2.19 needs" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-compile -r requirements.txt
	$(BIN)/python -m compileall -q -j 0 -x '/ansible_collections/' $(VENV)/lib >/dev/null
	touch $@

venv: $(BIN)/.installed

# The ansible package bundles the collections; Galaxy is tried only if one is missing
# (into ~/.ansible/collections: ansible.cfg's first collections path is this checkout's link).
collections: venv
	@listed=$$(ansible-galaxy collection list 2>/dev/null); \
	missing=$$(for c in community.mysql community.crypto community.docker ansible.posix; do \
	    echo "$$listed" | grep -q "^$$c " || echo $$c; done); \
	if [ -n "$$missing" ]; then \
	    echo "collections missing ($$missing): installing from Galaxy"; \
	    ansible-galaxy collection install -r requirements.yml -p ~/.ansible/collections; \
	else echo "collections: bundled with the ansible package"; fi

docker:
	@bash molecule/resources/ensure-docker.sh

images: docker
	@bash molecule/resources/build-images.sh $(IMAGES)

# yamllint, ansible-lint, each role's README variable table against its argument
# specs, and ansible-test sanity on the collection's content (scripts/sanity.sh).
lint: venv
	yamllint .
	ansible-lint
	$(BIN)/python scripts/readme_variables.py --check
	BIN=$(BIN) bash scripts/sanity.sh

# The collection's plugins and the roles' specs (tests/unit), the checkout and the
# built artifact resolving flaskstack.stack.* (tests/checkout: ansible-playbook on
# this machine only, check mode), the lab's report (lab/tests) and the test
# suite's cost table (molecule/resources/tests).
unit: venv
	pytest -q tests/unit tests/checkout lab/tests molecule/resources/tests

# This checkout as the collection flaskstack.stack: .cache/collection/flaskstack-stack-<version>.tar.gz
# (galaxy.yml's build_ignore keeps the tests, benchmarks, lab and tooling out).
# molecule/resources/install-collection.sh DIR builds it and installs it into DIR.
collection: venv
	ansible-galaxy collection build --force --output-path .cache/collection .

# The scenarios side by side: the tiers on six hosts (a replicated MySQL group of
# three, lb1, app1, app2: the critical path, named first), the stack on one host
# (Debian 12 and 13, MariaDB), and on Oracle MySQL over SSH as a sudo user (two
# hosts, with a reboot).
molecule: collections images
	@bash molecule/resources/run-scenarios.sh multi-host default oracle-mysql

# The scenarios start once the venv, collections and images are there; lint and
# the unit tests run beside them under nice 19 (on CPU the scenarios leave idle,
# off their critical path), their output shown in one piece when the scenarios end.
# Either failing fails the target.
CHECKS_LOG := .cache/lint-and-unit.log
test: collections images
	@mkdir -p $(dir $(CHECKS_LOG)); \
	nice -n 19 $(MAKE) --no-print-directory -j2 --output-sync=target lint unit >$(CHECKS_LOG) 2>&1 & checks=$$!; \
	$(MAKE) --no-print-directory molecule; scenarios=$$?; \
	wait $$checks; checked=$$?; \
	echo; echo "=== make lint unit"; cat $(CHECKS_LOG); \
	[ $$checked -eq 0 ] || echo "make lint unit failed" >&2; \
	[ $$scenarios -eq 0 ] && [ $$checked -eq 0 ]

# No remote user for the container: its default (root) applies, and the docker
# connection skips the two `docker version` calls it makes per task otherwise.
demo: collections docker
	@bash molecule/resources/build-images.sh $(DEMO_IMAGE_ENTRY)
	@docker rm -f $(DEMO_CONTAINER) >/dev/null 2>&1 || true
	docker run -d --name $(DEMO_CONTAINER) --hostname stack1 $(DOCKER_SYSTEMD_FLAGS) $(DEMO_IMAGE) >/dev/null
	ansible-playbook playbooks/site.yml \
	    -e ansible_connection=community.docker.docker -e ansible_host=$(DEMO_CONTAINER) -e '{"ansible_user": null}'
	@echo; echo "=== The stack on $(DEMO_CONTAINER): gunicorn -> HAProxy -> MySQL"
	@docker exec $(DEMO_CONTAINER) flaskstack-status
	@echo; echo "Look around:   docker exec -it $(DEMO_CONTAINER) bash"
	@echo "               (then: flaskstack-status, mysql -e 'SHOW PROCESSLIST', journalctl -u flaskapp@8000)"
	@echo "Tear it down:  make demo-destroy"

# The write-up's experiment on the demo container (after make demo), or on another
# single-host stack: make lab LAB_ARGS="-i INVENTORY -e lab_host=NAME".
LAB_ARGS ?= -e ansible_connection=community.docker.docker -e ansible_host=$(DEMO_CONTAINER) -e '{"ansible_user": null}'
lab: collections
	ansible-playbook lab/playbook.yml $(LAB_ARGS)
	$(BIN)/python lab/report.py docs/lab.json --markdown docs/lab.md --picture docs/lab.png
	@echo; echo "Report: docs/lab.md, picture: docs/lab.png"

# Provisioning timings (over SSH and docker) and what HAProxy costs the stack:
# writes docs/benchmarks.md and docs/benchmarks.png (about an hour).
bench: collections images
	BENCH_DOCKER_FLAGS="$(DOCKER_SYSTEMD_FLAGS)" $(BIN)/python bench/run.py

demo-destroy:
	@docker rm -f $(DEMO_CONTAINER) >/dev/null 2>&1 || true
	@echo "demo container $(DEMO_CONTAINER) removed"

clean: demo-destroy
	molecule destroy -s default || true
	molecule destroy -s multi-host || true
	molecule destroy -s oracle-mysql || true
	bash molecule/resources/cgroup2-cleanup.sh || true
