# rlaif - Reinforcement Learning from AI Feedback, an MPI program in C.
#
#   make                 build build/rlaif (release)
#   make VARIANT=debug   build build/debug/rlaif   (-O0 -g)
#   make VARIANT=san     build build/san/rlaif     (AddressSanitizer + UBSan)
#   make deps            install the Debian packages the project needs (or print the command)
#   make run             the main job: every stage of input/quickstart.yaml, then its report
#   make run-rlhf        the RLHF arm (input/quickstart-rlhf.yaml) after make run, RLAIF vs RLHF
#   make run-prompt      the paper's preference-prompt labeller (input/quickstart-prompt.yaml)
#                        after make run, against the quickstart's likelihood labels
#   make report          analysis/report.py on the last run (RUN_DIR=... for another one)
#   make test            all tests; the last line reads "N passed, N failed"
#   make test-slurm      only the tests under a real (local, one-node) Slurm: tests/scripts/test_slurm.sh
#   make slurm-start     start that local Slurm (tools/slurm_local.sh); make slurm-stop stops it
#   make bench           throughput figures, each next to its reference measured in the same run
#   make format          clang-format the tree; make format-check verifies it
#   V=1                  show the full compiler command lines

VARIANT ?= release
WERROR  ?= 1
PYTHON  ?= /usr/bin/python3
NP      ?= 4

ifeq ($(VARIANT),release)
  OBJDIR := build/release
  BIN    := build/rlaif
  OPT    := -O3 -march=native -g
else ifeq ($(VARIANT),debug)
  OBJDIR := build/debug
  BIN    := $(OBJDIR)/rlaif
  OPT    := -O0 -g3
else ifeq ($(VARIANT),san)
  OBJDIR := build/san
  BIN    := $(OBJDIR)/rlaif
  OPT    := -O1 -g -march=native -fno-omit-frame-pointer -fsanitize=address,undefined \
            -fno-sanitize-recover=undefined
else
  $(error VARIANT must be release, debug or san, not '$(VARIANT)')
endif

CC       := mpicc
PKGS     := openblas hdf5-openmpi yaml-0.1 libpcre2-8
WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
            -Wwrite-strings -Wformat=2 -Wundef -Wvla -Wno-unused-parameter -Wno-format-truncation
ifeq ($(WERROR),1)
  WARN   += -Werror
endif
# pkg-config is only asked once the deps are in place, so that 'make deps' works on a bare machine.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS   := -std=gnu11 $(OPT) -fno-math-errno $(WARN) -Iinclude -I$(OBJDIR) -MMD -MP
LDLIBS    = $(PKG_LIBS) -lm -lpthread
CMOCKA_LIBS = $(shell pkg-config --libs cmocka 2>/dev/null)

SRCS     := $(wildcard src/*.c)
OBJS     := $(SRCS:src/%.c=$(OBJDIR)/obj/%.o)
LIBOBJS  := $(filter-out $(OBJDIR)/obj/main.o,$(OBJS))
UNIT_SRCS:= $(wildcard tests/unit/test_*.c) $(wildcard tests/mpi/test_*.c)
UNIT_BINS:= $(UNIT_SRCS:tests/%.c=$(OBJDIR)/tests/%)

.PHONY: all deps deps-test run run-rlhf run-prompt test test-build bench report format format-check clean \
        FORCE check-decks fuzz fuzz-build fuzz-seeds test-slurm slurm-start slurm-stop
all: $(BIN)

# ---------------------------------------------------------------- dependencies
DEPS_RUN  := gcc make pkg-config openmpi-bin libopenmpi-dev libopenblas-dev libhdf5-openmpi-dev \
             hdf5-tools libyaml-dev libpcre2-dev python3-h5py python3-matplotlib python3-numpy
DEPS_TEST := $(DEPS_RUN) libcmocka-dev python3-torch clang libclang-rt-14-dev

deps:
	@tools/deps.sh $(DEPS_RUN)
deps-test:
	@tools/deps.sh $(DEPS_TEST)

# ---------------------------------------------------------------- build
$(OBJDIR)/build_info.h: FORCE
	@mkdir -p $(OBJDIR)
	@tools/build_info.sh "$(CC)" "$(CFLAGS)" > $@.new
	@cmp -s $@.new $@ && rm -f $@.new || mv $@.new $@

$(OBJDIR)/obj/%.o: src/%.c | $(OBJDIR)/build_info.h
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  CC      $<";)$(CC) $(CFLAGS) $(PKG_CFLAGS) -c $< -o $@

$(OBJDIR)/obj/version.o: $(OBJDIR)/build_info.h

$(BIN): $(OBJS)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  LINK    $@";)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(OBJDIR)/tests/%: tests/%.c $(LIBOBJS)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  TEST    $@";)$(CC) $(CFLAGS) $(PKG_CFLAGS) -Itests -o $@ $< $(LIBOBJS) $(LDLIBS) $(CMOCKA_LIBS)

test-build: $(BIN) $(UNIT_BINS)

# ---------------------------------------------------------------- fuzzing
# make fuzz [FUZZ_SECONDS=60] [FUZZ_JOBS=1]: builds every tests/fuzz/fuzz_*.c with clang and
# libFuzzer + AddressSanitizer + UBSan, then runs each for FUZZ_SECONDS, starting from the seed
# corpus in tests/fuzz/corpus/NAME (new inputs go to build/fuzz/corpus-NAME; crashes to
# build/fuzz/crash-*). Only the library sources the targets need are built (MPI's headers are
# included through model.h, nothing of MPI is called or linked).
FUZZ_SECONDS ?= 60
FUZZ_JOBS    ?= 1
FUZZ_CC      ?= clang
FUZZ_DIR     := build/fuzz
FUZZ_SRCS    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS    := $(FUZZ_SRCS:tests/fuzz/%.c=$(FUZZ_DIR)/%)
FUZZ_LIB     := src/err.c src/gguf.c src/gguf_model.c src/tokenizer.c src/tokenizer_pre.c \
                src/bpe_train.c src/rng.c src/config.c src/log.c
FUZZ_FLAGS   := -std=gnu11 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined -Iinclude $(shell pkg-config --cflags libpcre2-8 2>/dev/null) \
                $(shell mpicc --showme:compile 2>/dev/null)

$(FUZZ_DIR)/%: tests/fuzz/%.c $(FUZZ_LIB) $(wildcard include/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(FUZZ_LIB) $(shell pkg-config --libs libpcre2-8 yaml-0.1 2>/dev/null) -lm

# the checkpoint reader needs (parallel) HDF5, and so MPI's libraries, linked but not initialised
FUZZ_H5_LIB  := src/ckpt.c src/h5io.c src/crc.c src/err.c src/log.c src/rng.c
FUZZ_H5_LINK  = $(shell pkg-config --libs hdf5-openmpi 2>/dev/null) $(shell mpicc --showme:link 2>/dev/null) -lm
$(FUZZ_DIR)/fuzz_ckpt: tests/fuzz/fuzz_ckpt.c $(FUZZ_H5_LIB) $(wildcard include/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(shell pkg-config --cflags hdf5-openmpi 2>/dev/null) -o $@ $< \
	  $(FUZZ_H5_LIB) $(FUZZ_H5_LINK)
$(FUZZ_DIR)/make_ckpt_seeds: tests/fuzz/make_ckpt_seeds.c tests/fuzz/fuzz_ckpt.c $(FUZZ_H5_LIB) $(wildcard include/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=gnu11 -g -O1 -Iinclude $(shell mpicc --showme:compile 2>/dev/null) \
	  $(shell pkg-config --cflags hdf5-openmpi 2>/dev/null) -o $@ $< $(FUZZ_H5_LIB) $(FUZZ_H5_LINK)
# the seed corpus of fuzz_ckpt, written by the real checkpoint writer
fuzz-seeds: $(FUZZ_DIR)/make_ckpt_seeds
	@mkdir -p tests/fuzz/corpus/ckpt && $< tests/fuzz/corpus/ckpt && ls -l tests/fuzz/corpus/ckpt/seed-*

fuzz-build: $(FUZZ_BINS)

# fuzz_ckpt also fuzzes libhdf5, which crashes, hangs or runs out of memory on some damaged
# files (tests/fuzz/hdf5-crashes/README.md): it runs in fork mode past those, and
# tools/fuzz_triage.sh then fails the run only for a finding in our code.
FUZZ_CKPT_FLAGS := -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 -timeout=3 \
                   -malloc_limit_mb=1024
fuzz: fuzz-build
	@for b in $(FUZZ_BINS); do \
	  n=$${b##*/}; n=$${n#fuzz_}; mkdir -p $(FUZZ_DIR)/corpus-$$n tests/fuzz/corpus/$$n; \
	  echo "== $$n: $(FUZZ_SECONDS) s"; \
	  RLAIF_SHARED=$${RLAIF_SHARED-$$(cd ../shared 2>/dev/null && pwd)} \
	  ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	  $$b -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
	    -rss_limit_mb=4096 $(if $(filter-out 1,$(FUZZ_JOBS)),-jobs=$(FUZZ_JOBS) -workers=$(FUZZ_JOBS)) \
	    $$([ $$n = ckpt ] && echo '$(FUZZ_CKPT_FLAGS)') \
	    -artifact_prefix=$(FUZZ_DIR)/crash-$$n- -print_final_stats=1 \
	    $(FUZZ_DIR)/corpus-$$n tests/fuzz/corpus/$$n || [ $$n = ckpt ] || exit 1; \
	  if [ $$n = ckpt ]; then tools/fuzz_triage.sh $$b $(FUZZ_DIR)/crash-ckpt-* || exit 1; fi; \
	done

# ---------------------------------------------------------------- jobs
run: deps
	@$(MAKE) --no-print-directory $(BIN)
	tools/mpirun.sh -np $(NP) $(BIN) run input/quickstart.yaml $(RUN_FLAGS)
	@$(PYTHON) analysis/report.py runs/quickstart && \
	  echo "make run: done. Report: runs/quickstart/report/report.md (plots beside it; 'make report' rebuilds it)"

# The RLHF arm: the quickstart run's SFT policy, pairs and judge, a reward model on gold labels.
run-rlhf: deps
	@$(MAKE) --no-print-directory $(BIN)
	@test -e runs/quickstart/models/policy_rl.gguf || { echo "run-rlhf: run 'make run' first"; exit 2; }
	tools/mpirun.sh -np $(NP) $(BIN) run input/quickstart-rlhf.yaml $(RUN_FLAGS)
	@$(PYTHON) analysis/report.py runs/quickstart --compare runs/quickstart-rlhf && \
	  echo "make run-rlhf: done. RLAIF vs RLHF: runs/quickstart/report/report.md"

run-prompt: deps
	@$(MAKE) --no-print-directory $(BIN)
	@test -e runs/quickstart/models/policy_rl.gguf || { echo "run-prompt: run 'make run' first"; exit 2; }
	tools/mpirun.sh -np $(NP) $(BIN) run input/quickstart-prompt.yaml $(RUN_FLAGS)
	@$(PYTHON) analysis/report.py runs/quickstart-prompt --compare runs/quickstart && \
	  echo "make run-prompt: done. The paper's prompt vs the likelihood judge: runs/quickstart-prompt/report/report.md"

test: deps-test
	@$(MAKE) --no-print-directory test-build
	@BIN=$(BIN) OBJDIR=$(OBJDIR) PYTHON=$(PYTHON) VARIANT=$(VARIANT) tests/run.sh

# the real-Slurm tests alone (make test runs them too); they start and stop their own cluster
test-slurm: deps-test
	@$(MAKE) --no-print-directory $(BIN)
	@BIN=$(BIN) OBJDIR=$(OBJDIR) PYTHON=$(PYTHON) VARIANT=$(VARIANT) TESTS=scripts/test_slurm \
	  tests/run.sh
slurm-start:
	@tools/slurm_local.sh start
	@tools/slurm_local.sh env
slurm-stop:
	@tools/slurm_local.sh stop

bench: deps-test
	@$(MAKE) --no-print-directory $(BIN)
	@BIN=$(BIN) PYTHON=$(PYTHON) tools/bench.sh
	@$(MAKE) --no-print-directory test-build
	@echo; OBJDIR=$(OBJDIR) tools/bench_rl.sh

report:
	@if [ -z "$$RUN_DIR" ] && [ -e runs/quickstart-rlhf/metrics.h5 ]; then \
	  $(PYTHON) analysis/report.py runs/quickstart --compare runs/quickstart-rlhf; \
	else $(PYTHON) analysis/report.py $${RUN_DIR:-runs/quickstart}; fi

format:
	clang-format -i src/*.c include/*.h tests/*/*.c
format-check:
	@clang-format --dry-run --Werror src/*.c include/*.h tests/*/*.c && echo "format: clean"

clean:
	rm -rf build

FORCE:

-include $(OBJS:.o=.d) $(UNIT_BINS:=.d)
