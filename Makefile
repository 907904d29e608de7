# enclaver: one Makefile for the whole tree. Objects go out of tree under
# build/<variant>/; `make` builds bin/enclaver (release), `make test` builds
# the release and the ASan+UBSan variants and runs the whole suite on both.
#
#   make                 bin/enclaver, bin/enclaver-build
#   make test            unit + CLI tests, release and sanitizer builds
#   make example         build the built-in example EIF and print its measurements
#   make fuzz            libFuzzer targets (clang) under build/fuzz/; `make test`
#                        runs each for a bounded number of inputs (scripts/fuzz.sh)
#   make bench           benchmarks: figures and ratios, no assertions
#   make format          clang-format every source file
#   VARIANT=asan make    any target against the sanitizer build

VARIANT ?= release
comma := ,
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
BUILD := build/$(VARIANT)

# Library modules: every .c directly under these folders. Each module is an archive of its own
# (build/<variant>/lib/lib<module>.a) and may use only the modules DEPS_<module> names (the rules
# of docs/architecture.md). The programs link only the archives their rule allows, so a call
# across a forbidden edge fails to link; scripts/check-deps.sh checks every module's includes and
# symbols against the same table (`make check-deps`, part of `make test`). MODULES lists them
# from the top down, the order static linking needs. The CLI (cli/) links on top; the tests and
# fuzz targets link libenclaver.a, every module in one archive.
MODULES := odyn runtime builder oci attest keys eif manifest wire common
DEPS_common :=
DEPS_wire := common
DEPS_manifest := wire common
DEPS_eif := common
DEPS_keys := eif common
DEPS_attest := common
DEPS_oci := common
DEPS_builder := manifest oci eif keys common
DEPS_runtime := manifest wire eif common
DEPS_odyn := manifest wire common
# A module and everything it may reach, top-down.
module_closure = $(filter $(call closure_set,$(1)),$(MODULES))
closure_set = $(1) $(foreach d,$(1),$(call closure_set,$(DEPS_$(d))))
module_archives = $(foreach m,$(call module_closure,$(1)),$(BUILD)/lib/lib$(m).a)
PKGS := openssl jansson zlib libcurl libarchive yaml-0.1 libzstd libisal

CC ?= cc
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS := $(shell pkg-config --libs $(PKGS))
WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral -Wvla
BASE_CFLAGS := -std=gnu17 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 $(WARN) -I. $(PKG_CFLAGS) \
	-DENCLAVER_VERSION=\"$(VERSION)\"

ifeq ($(VARIANT),asan)
  OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
  LDOPT := -fsanitize=address,undefined
else ifeq ($(VARIANT),release)
  OPT := -O2 -g
  LDOPT :=
else
  $(error VARIANT must be release or asan)
endif

CFLAGS_ALL := $(BASE_CFLAGS) $(OPT) $(CFLAGS)
LDFLAGS_ALL := $(LDOPT) $(LDFLAGS)
LIBS := $(PKG_LIBS) -lpthread

LIB_SRCS := $(foreach m,$(MODULES),$(wildcard $(m)/*.c))
LIB_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRCS))
CLI_SRCS := $(wildcard cli/*.c)
CLI_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(CLI_SRCS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
# The unit tests' own support code: the harness and the simulated Nitro device.
HARNESS_OBJ := $(BUILD)/obj/tests/harness.o $(BUILD)/obj/tests/ne_sim.o
# Helper programs the tests run (fixture generators): tests/tools/*.c.
TOOL_SRCS := $(wildcard tests/tools/*.c)
TOOL_BINS := $(patsubst tests/tools/%.c,$(BUILD)/tests/tools/%,$(TOOL_SRCS))
LIBENCLAVER := $(BUILD)/libenclaver.a
ENCLAVER := $(BUILD)/bin/enclaver
ODYN := $(BUILD)/bin/odyn
RUN_STATIC := $(BUILD)/bin/enclaver-run.static

.PHONY: all test check check-deps deps-rules unit-tests example bench fuzz format clean
all: bin/enclaver bin/enclaver-build bin/enclaver-run bin/enclaver-run.static bin/odyn

ifeq ($(VARIANT),release)
bin/enclaver: $(ENCLAVER)
	@mkdir -p bin
	cp $< $@
bin/enclaver-build: bin/enclaver
	ln -sf enclaver $@
bin/enclaver-run: bin/enclaver
	ln -sf enclaver $@
bin/odyn: $(ODYN)
	@mkdir -p bin
	cp $< $@
bin/enclaver-run.static: $(RUN_STATIC)
	@mkdir -p bin
	cp $< $@
endif

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(LIBENCLAVER): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

# lib<module>.a: that module's objects only.
define module_archive_rule
$(BUILD)/lib/lib$(1).a: $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard $(1)/*.c))
	@mkdir -p $$(dir $$@)
	rm -f $$@
	ar rcs $$@ $$^
endef
$(foreach m,$(MODULES),$(eval $(call module_archive_rule,$(m))))

# The CLI may use every module.
ENCLAVER_ARCHIVES := $(call module_archives,$(MODULES))
$(ENCLAVER): $(CLI_OBJS) $(ENCLAVER_ARCHIVES)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $(CLI_OBJS) $(ENCLAVER_ARCHIVES) $(LIBS)
	ln -sf enclaver $(dir $@)enclaver-build
	ln -sf enclaver $(dir $@)enclaver-run

# odyn runs inside the enclave on any (or no) distribution: one static
# binary with only libc, jansson and libyaml. ASan cannot link statically, so
# the asan variant (which the tests also run) is dynamic.
ODYN_LIBS := -Wl,-Bstatic -ljansson -lyaml -lssl -lcrypto -Wl,-Bdynamic -lpthread
ifeq ($(VARIANT),release)
  ODYN_LIBS := -static -ljansson -lyaml -lssl -lcrypto -lpthread
endif
ODYN_ARCHIVES := $(call module_archives,odyn)
$(ODYN): $(BUILD)/obj/odyn/main/main.o $(ODYN_ARCHIVES)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(ODYN_ARCHIVES) $(ODYN_LIBS)

# The enclaver-run release images carry: only the runner (no registry client, so no libcurl),
# static like odyn so it runs on any base image or none. `enclaver build` puts it in the image.
# cmd_kernel.c carries scripts/kernel-bundle-debian.sh (.incbin), which -MMD does not see.
$(BUILD)/obj/cli/cmd_kernel.o: scripts/kernel-bundle-debian.sh
RUN_STATIC_OBJS := $(patsubst %,$(BUILD)/obj/cli/%.o,main/enclaver_run cmd_run cmd_describe oci_opts output progress)
# runtime's rule plus oci for the shared image-option parsing (no registry client is reached).
RUN_STATIC_ARCHIVES := $(call module_archives,runtime oci)
$(RUN_STATIC): $(RUN_STATIC_OBJS) $(RUN_STATIC_ARCHIVES)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $(RUN_STATIC_OBJS) $(RUN_STATIC_ARCHIVES) $(ODYN_LIBS) -lz

# Test helpers: programs the CLI tests drive (not tests themselves).
HELPER_SRCS := $(filter-out tests/helpers/launcher_local.c,$(wildcard tests/helpers/*.c))
HELPERS := $(patsubst tests/helpers/%.c,$(BUILD)/helpers/%,$(HELPER_SRCS)) $(BUILD)/helpers/enclaver-local
$(BUILD)/helpers/%: $(BUILD)/obj/tests/helpers/%.o $(LIBENCLAVER)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIBENCLAVER) $(LIBS)
# The enclaver CLI plus a test-only launcher (odyn as a host process over unix sockets):
# `enclaver-local run --launcher local ...` drives the real outer side in tests.
$(BUILD)/helpers/enclaver-local: $(CLI_OBJS) $(BUILD)/obj/tests/helpers/launcher_local.o $(LIBENCLAVER)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $(CLI_OBJS) $(BUILD)/obj/tests/helpers/launcher_local.o $(LIBENCLAVER) $(LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(HARNESS_OBJ) $(LIBENCLAVER)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(HARNESS_OBJ) $(LIBENCLAVER) $(LIBS)

$(BUILD)/tests/tools/%: $(BUILD)/obj/tests/tools/%.o $(LIBENCLAVER)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIBENCLAVER) $(LIBS)

# Everything the test runner needs for one variant.
unit-tests: $(UNIT_BINS) $(TOOL_BINS) $(ENCLAVER) $(ODYN) $(RUN_STATIC) $(HELPERS)

# The dependency rules above as MODULE:DEP,DEP words, checked on this variant's archives
# (includes and symbols); tests/cli/test_deps.sh runs the check too, and checks that it catches a breach.
DEPS_RULES := $(foreach m,$(MODULES),$(m):$(subst $(eval) ,$(comma),$(strip $(DEPS_$(m)))))
check-deps: $(ENCLAVER_ARCHIVES)
	scripts/check-deps.sh $(BUILD) $(DEPS_RULES)
deps-rules:
	@echo $(DEPS_RULES)

test check:
	$(MAKE) VARIANT=release all unit-tests check-deps
	$(MAKE) VARIANT=asan unit-tests
	$(MAKE) fuzz
	tests/run.sh release asan

example: all
	scripts/example.sh

bench: all
	scripts/bench.sh

# libFuzzer targets: clang only. Each tests/fuzz/fuzz_*.c becomes a binary.
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
fuzz:
	$(MAKE) VARIANT=release CC=clang \
		CFLAGS="-fsanitize=fuzzer-no-link,address,undefined -O1" \
		BUILD=build/fuzz build/fuzz/libenclaver.a
	@mkdir -p build/fuzz/bin
	for f in $(FUZZ_SRCS); do \
		clang $(BASE_CFLAGS) -O1 -g -fsanitize=fuzzer,address,undefined $$f \
			build/fuzz/libenclaver.a $(LIBS) -o build/fuzz/bin/$$(basename $$f .c) || exit 1; \
	done

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build bin

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(BUILD)/obj/odyn/main/main.d $(patsubst %.c,$(BUILD)/obj/%.d,$(TOOL_SRCS)) $(patsubst %.c,$(BUILD)/obj/%.d,$(HELPER_SRCS) tests/helpers/launcher_local.c) $(patsubst %.c,$(BUILD)/obj/%.d,$(UNIT_SRCS)) $(HARNESS_OBJ:.o=.d)
