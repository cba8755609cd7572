# shim/dpdk.mk: builds $(BUILD)/libgazelle-dpdk.so, the DPDK glue (shim/dpdk_glue.c).
#
# Self-contained: `make -f shim/dpdk.mk BUILD=build` on its own, or `include shim/dpdk.mk` from the
# top Makefile (then `make dpdk-glue`). Kept apart from the preload library on purpose: see
# docs/dpdk.md ("Why a separate library").
#
# Variables (override on the command line): BUILD, DPDK_CC, DPDK_PKG_CONFIG, DPDK_PKG, DPDK_CFLAGS.

_gz_dpdk_standalone := $(if $(filter 1,$(words $(MAKEFILE_LIST))),yes)
_gz_dpdk_saved_goal := $(.DEFAULT_GOAL)
_gz_dpdk_dir := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))

BUILD ?= build
DPDK_CC ?= cc
DPDK_PKG_CONFIG ?= pkg-config
DPDK_PKG ?= libdpdk
DPDK_CFLAGS ?= -O2 -g -fPIC -Wall -Wextra -Werror -fvisibility=hidden -DALLOW_EXPERIMENTAL_API

DPDK_GLUE_SRC := $(_gz_dpdk_dir)/dpdk_glue.c
DPDK_GLUE_SO := $(BUILD)/libgazelle-dpdk.so

.PHONY: dpdk-glue dpdk-glue-clean
dpdk-glue: $(DPDK_GLUE_SO)

# pkg-config runs in the recipe (not at parse time) so including this file costs nothing and a
# missing libdpdk-dev fails only this target, with pkg-config's own message.
$(DPDK_GLUE_SO): $(DPDK_GLUE_SRC) $(_gz_dpdk_dir)/dpdk.mk
	@mkdir -p $(@D)
	$(DPDK_CC) $(DPDK_CFLAGS) $$($(DPDK_PKG_CONFIG) --cflags $(DPDK_PKG)) -shared -o $@.tmp $< \
		$$($(DPDK_PKG_CONFIG) --libs $(DPDK_PKG))
	@mv -f $@.tmp $@

dpdk-glue-clean:
	rm -f $(DPDK_GLUE_SO)

# Do not steal the including Makefile's default goal.
ifeq ($(_gz_dpdk_standalone),yes)
.DEFAULT_GOAL := dpdk-glue
else
.DEFAULT_GOAL := $(_gz_dpdk_saved_goal)
endif
