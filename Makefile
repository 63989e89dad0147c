# The two entry points the README promises, plus the checks CI runs.
CARGO ?= cargo

.PHONY: setup build test lint fmt bench-mkfs demo

# Install the system tools the tests and benchmarks use (Debian, as root).
setup:
	bash scripts/deps.sh

build:
	$(CARGO) build --workspace --bins

# Integration tests find target/<profile>/vmimage, so build the binary first.
test: build
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace

bench-mkfs: build
	bash scripts/bench-mkfs.sh

# The main job as it stands: an ext4 image from a Debian tree.
demo: build
	bash scripts/demo.sh
