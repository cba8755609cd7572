# Gazelle#: `make` builds build/libgazelle.so (the preload library) and build/libgazelle-stack.so
# (the NativeAOT stack it loads). `make test` runs every test; `make demo` runs the main job.
BUILD     := build
DOTNET    ?= dotnet
CC        ?= cc
CFLAGS    ?= -O2 -g
SHIM_CFLAGS := $(CFLAGS) -fPIC -fvisibility=hidden -Wall -Wextra -Werror
CS_SOURCES := $(shell find src aot -name '*.cs' -o -name '*.csproj' 2>/dev/null | grep -v '/obj/\|/bin/') Directory.Build.props

.PHONY: all deps test demo clean
all: $(BUILD)/libgazelle.so $(BUILD)/libgazelle-stack.so $(BUILD)/libgazelle-dpdk.so $(BUILD)/tests/preload_probe \
     $(BUILD)/tests/posix_oracle $(BUILD)/tests/posix_oracle_urgent $(BUILD)/tests/fork_probe $(BUILD)/tests/stack_soak $(BUILD)/tests/netem_relay $(BUILD)/tests/signal_restart

# Installs missing Debian packages (root) or prints the command; near-instant when all are present.
deps:
	@scripts/deps.sh

$(BUILD)/.deps: scripts/deps.sh
	@scripts/deps.sh
	@mkdir -p $(BUILD) && touch $@

$(BUILD)/libgazelle.so: shim/gazelle_shim.c shim/program_signals.c shim/gazelle_abi.h shim/hooks.h shim/program_signals.h | $(BUILD)/.deps
	@mkdir -p $(BUILD)
	$(CC) $(SHIM_CFLAGS) -shared -o $@ shim/gazelle_shim.c shim/program_signals.c -ldl -lpthread

# The malloc family for the deep-bound stack library, forwarded to the process's allocator
# (shim/alloc_forward.c); the stack library links it first, so it is built first.
$(BUILD)/libgazelle-alloc.so: shim/alloc_forward.c | $(BUILD)/.deps
	$(CC) $(SHIM_CFLAGS) -shared -Wl,-soname,libgazelle-alloc.so -o $@ $< -ldl

$(BUILD)/libgazelle-stack.so: $(CS_SOURCES) $(BUILD)/libgazelle-alloc.so | $(BUILD)/.deps
	$(DOTNET) publish aot/Gazelle.Native.csproj -c Release -o $(BUILD)/aot --nologo -v quiet
	cp $(BUILD)/aot/libgazelle-stack.so $@

$(BUILD)/tests/%: tests/integration/programs/%.c | $(BUILD)/.deps
	@mkdir -p $(BUILD)/tests
	$(CC) $(CFLAGS) -Wall -Wextra -Werror -o $@ $< -ldl -lpthread

include shim/dpdk.mk

test: all
	@tests/run-all.sh

demo: all
	@scripts/demo.sh

clean:
	rm -rf $(BUILD)
	find . -type d \( -name bin -o -name obj \) -prune -exec rm -rf {} +
