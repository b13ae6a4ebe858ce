# semcached build. `make help` lists the targets.
#
# Layout: every *.c / *.cpp under common/ storage/ index/ embed/ route/ cluster/
# server/ goes into build/libsc.a, except entry points named *_main.c.
# client/semcache.c (+ the common/ helpers it uses) is build/libsemcache.a,
# which exports only the functions of include/semcache.h.
# Unit tests are tests/unit/test_*.c, linked into one runner; benchmarks are
# benchmarks/bench_*.c, one program each; fuzz targets tests/fuzz/fuzz_*.c.

BUILD   ?= build
V       ?=
Q       = $(if $(V),,@)
CC      ?= gcc
CXX     ?= g++
LD      ?= ld
OBJCOPY ?= objcopy
OPT     ?= -O2
SAN     ?=
WARN    = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
          -Wno-unused-parameter
ifneq ($(CI),)
WARN   += -Werror
endif
ifeq ($(SAN),1)
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif
LLHTTP_DIR = /usr/share/llhttp
LLHTTP_INC = /usr/share/include/llhttp
CPPFLAGS = -I. -Iinclude -I$(LLHTTP_INC) -D_GNU_SOURCE -MMD -MP
CFLAGS  = -std=c11 $(OPT) -g -pthread $(WARN) $(SANFLAGS)
CXXFLAGS = -std=c++17 $(OPT) -g -pthread -Wall -Wextra $(SANFLAGS)
FAISS_LIBS = -lfaiss -lgomp
LDLIBS  = -luv -llmdb -ljansson -lcurl -lutf8proc -lxxhash -lhiredis $(FAISS_LIBS) -lopenblas -lm -lpthread -lstdc++
LDFLAGS = -pthread $(SANFLAGS)

MODULES  = common storage index embed route cluster server
LIB_C    = $(filter-out %_main.c,$(foreach m,$(MODULES),$(wildcard $(m)/*.c)))
LIB_CXX  = $(foreach m,$(MODULES),$(wildcard $(m)/*.cpp))
UI_FILES = server/ui/index.html server/ui/app.js server/ui/app.css
LIB_OBJ  = $(LIB_C:%.c=$(BUILD)/obj/%.o) $(LIB_CXX:%.cpp=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/ui_assets.o \
           $(BUILD)/obj/llhttp/api.o $(BUILD)/obj/llhttp/http.o $(BUILD)/obj/llhttp/llhttp.o
# libsemcache: client/*.c except the CLI's own files (cli_*.c) and entry
# points, plus the common/ helpers they use. Only the functions declared in
# include/semcache.h are exported (see the libsemcache.a rule).
CLIENT_C   = $(filter-out %_main.c client/cli_%.c,$(wildcard client/*.c))
CLIENT_OBJ = $(CLIENT_C:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/common/err.o $(BUILD)/obj/common/buf.o \
             $(BUILD)/obj/common/alloc.o $(BUILD)/obj/common/log.o
CLI_OBJ    = $(BUILD)/obj/client/cli_main.o $(BUILD)/obj/client/cli_json.o $(BUILD)/obj/client/cli_http.o \
             $(BUILD)/obj/common/err.o $(BUILD)/obj/common/buf.o \
             $(BUILD)/obj/common/alloc.o $(BUILD)/obj/common/log.o
UNIT_C   = $(wildcard tests/unit/*.c)
UNIT_OBJ = $(UNIT_C:%.c=$(BUILD)/obj/%.o)
BENCH_C  = $(wildcard benchmarks/bench_*.c)
BENCHES  = $(BENCH_C:benchmarks/%.c=$(BUILD)/%)
CLI      = $(if $(wildcard client/cli_main.c),$(BUILD)/semcache-cli)
EXAMPLE  = $(if $(wildcard client/example_main.c),$(BUILD)/semcache-example)
PROGS    = $(BUILD)/semcached $(BUILD)/unit_tests $(BUILD)/sc-model $(CLI) $(EXAMPLE) $(BENCHES)

.PHONY: all deps deps-train run test unit asan bench fuzz clean compdb help reference train ui-screenshot chaos replay
all: deps $(PROGS)

help:
	@echo "make         build everything into $(BUILD)/ (installs missing deps first)"
	@echo "make run     build and start semcached on its defaults (port 8080)"
	@echo "make test    build and run every test; ends with 'N passed, N failed'"
	@echo "make asan    the whole test suite under ASan+UBSan"
	@echo "make bench   run the benchmark programs (CSV); see BENCHMARKS.md"
	@echo "make fuzz    run each libFuzzer target briefly"
	@echo "make deps    install missing Debian/npm packages and the model"
	@echo "make replay DATA=DIR the error-budget replay benchmark (~5 min; BENCHMARKS.md)"
	@echo "make train DATA=DIR  retrain the cache embedder (PyTorch, ~1 h on 2 cores; see models/semcache-embed-v1/MODEL_CARD.md)"
	@echo "make chaos   kill -9 under mixed load, ROUNDS=20 rounds (RELIABILITY.md)"
	@echo "make ui-screenshot  docs/dashboard.png from a live server with traffic"
	@echo "make reference  regenerate tests/fixtures/use_reference.json with TF.js (slow)"
	@echo "make clean   remove build outputs;  make compdb  compile_commands.json"

deps:
	@bash scripts/deps.sh

reference: deps
	cd tools/reference && npm install --no-audit --no-fund && node gen.js

run: all
	$(BUILD)/semcached $(ARGS)

deps-train:
	@bash scripts/deps.sh train

test: all
	@bash scripts/deps.sh test
	@bash tests/run.sh $(BUILD)

# The cache embedder's training (models/semcache-embed-v1/MODEL_CARD.md):
# USE-lite exported by sc-model, fine-tuned by tools/train/train.py on the
# training splits in DATA, written to $(BUILD)/train/semcache-embed-v1.
# Copy model.bin from there into models/semcache-embed-v1/ to ship it.
TRAIN_ARGS ?=
train: all
	@bash scripts/deps.sh train
	@test -n "$(DATA)" || { echo "make train: set DATA=DIR, the directory with qqp_dev.jsonl.gz, banking77_train.csv, clinc150_data_full.json.gz, gptcache_mock_data.json, stsb_sts-dev.csv (MODEL_CARD.md)"; exit 2; }
	@mkdir -p $(BUILD)/train
	$(BUILD)/sc-model export-use models/use-lite/dist $(BUILD)/train/use-lite
	/usr/bin/python3 tools/train/train.py --data $(DATA) --init $(BUILD)/train/use-lite \
	    --out $(BUILD)/train/semcache-embed-v1 --tool $(BUILD)/sc-model $(TRAIN_ARGS)
	/usr/bin/python3 tools/train/tune.py --data $(DATA) --model $(BUILD)/train/semcache-embed-v1 --tool $(BUILD)/sc-model

# Error-budget replay (not part of make test or make bench: it needs the
# data sets): banking77 and CLINC150 test queries through the proxy with an
# oracle upstream, fixed thresholds vs error budgets; ~5 min. Outputs in
# benchmarks/results/replay*.csv and replay.png (BENCHMARKS.md).
replay: all
	@bash scripts/deps.sh test
	@test -n "$(DATA)" || { echo "make replay: set DATA=DIR, the directory with banking77_train.csv, banking77_test.csv, clinc150_data_full.json.gz"; exit 2; }
	SC_DATA_DIR=$(DATA) bash benchmarks/replay.sh $(BUILD)

# Fault campaign (not part of make test): kill -9 under mixed load, ROUNDS
# rounds (default 20), then the upstream fault matrix; see RELIABILITY.md.
# Outputs in benchmarks/results/chaos_kill9.txt and fault_matrix.md.
ROUNDS ?= 20
chaos: all
	@bash scripts/deps.sh test
	@mkdir -p benchmarks/results
	SEMCACHED_BIN=$(CURDIR)/$(BUILD)/semcached node tests/chaos/kill9.js $(ROUNDS) | tee benchmarks/results/chaos_kill9.txt
	SEMCACHED_BIN=$(CURDIR)/$(BUILD)/semcached node tests/chaos/faults.js | tee benchmarks/results/fault_matrix.md

# docs/dashboard.png, with real traffic through the mock upstream (~1 min).
ui-screenshot: all
	@bash scripts/deps.sh test
	SEMCACHED_BIN=$(CURDIR)/$(BUILD)/semcached node tests/integration/ui_screenshot.js docs/dashboard.png

unit: all
	$(BUILD)/unit_tests $(T)

asan:
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=1 OPT=-O1 test

bench: all
	@bash benchmarks/run.sh $(BUILD)

fuzz: deps
	@bash tests/fuzz/run.sh

clean:
	rm -rf build

compdb:
	$(MAKE) clean && bear -- $(MAKE) all

$(BUILD)/libsc.a: $(LIB_OBJ)
	@rm -f $@
	$(Q)ar rcs $@ $^

# libsemcache.a holds one object: the client's objects linked together
# (ld -r), with every global symbol except the public API made local, so
# the sc_* helpers inside never clash with an application's own symbols.
# The API is the list of functions declared in the preprocessed
# include/semcache.h; tests/check_exports.sh checks the result.
$(BUILD)/libsemcache.syms: include/semcache.h | deps
	@mkdir -p $(dir $@)
	$(Q)$(CC) -E -P $< | grep -oE '\bsemcache_[A-Za-z0-9_]+[[:space:]]*\(' | \
	    sed 's/[[:space:]]*($$//' | sort -u >$@.tmp && test -s $@.tmp && mv $@.tmp $@

$(BUILD)/libsemcache.a: $(CLIENT_OBJ) $(BUILD)/libsemcache.syms
	@rm -f $@
	@echo "  AR    $@"
	$(Q)$(LD) -r -o $(BUILD)/obj/libsemcache.o $(CLIENT_OBJ)
	$(Q)$(OBJCOPY) --keep-global-symbols=$(BUILD)/libsemcache.syms $(BUILD)/obj/libsemcache.o
	$(Q)ar rcs $@ $(BUILD)/obj/libsemcache.o

$(BUILD)/semcached: $(BUILD)/obj/server/semcached_main.o $(BUILD)/libsc.a
	@echo "  LD    $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The CLI links its own helpers (cli_json.c, cli_http.c, common/) directly: the
# library keeps its copies private.
$(BUILD)/semcache-cli: $(CLI_OBJ) $(BUILD)/libsemcache.a
	@echo "  LD    $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ -lm

$(BUILD)/semcache-example: $(BUILD)/obj/client/example_main.o $(BUILD)/libsemcache.a
	@echo "  LD    $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ -lm

$(BUILD)/unit_tests: $(UNIT_OBJ) $(BUILD)/obj/client/cli_json.o $(BUILD)/obj/client/cli_http.o $(BUILD)/libsc.a $(BUILD)/libsemcache.a
	@echo "  LD    $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench_%: $(BUILD)/obj/benchmarks/bench_%.o $(BUILD)/libsc.a
	@echo "  LD    $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The C side of the embedder training pipeline (tools/train/).
$(BUILD)/sc-model: $(BUILD)/obj/tools/model_main.o $(BUILD)/libsc.a
	@echo "  LD    $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The hit verifier's trainer (not part of `all`): see BENCHMARKS.md (Quality).
$(BUILD)/train_verify: $(BUILD)/obj/tools/train_verify.o $(BUILD)/libsc.a
	@echo "  LD    $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The dashboard's files, compiled into the binary (server/ui.h).
$(BUILD)/gen/ui_assets.c: $(UI_FILES) scripts/embed_assets.sh
	@mkdir -p $(dir $@)
	$(Q)bash scripts/embed_assets.sh $@ $(UI_FILES)

$(BUILD)/obj/gen/ui_assets.o: $(BUILD)/gen/ui_assets.c | deps
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# llhttp's sources come from a package `deps` installs: a rule for them
# (run only when one is missing, after deps) keeps make from giving up on a
# fresh machine before deps ran.
$(LLHTTP_DIR)/%.c: | deps
	@test -f $@ || { echo "missing $@ (Debian package node-llhttp)"; exit 1; }

# ...and since that rule "made" them, make would count the package's files
# as intermediates and delete them after a build that installed the package
# (the next build dir, `make asan`, then found them missing): keep them.
.PRECIOUS: $(LLHTTP_DIR)/%.c

# Every compile waits for `deps` (order-only: it never forces a rebuild),
# so `make -j` on a fresh machine installs libuv & co. before the first
# #include of them. Make runs the phony `deps` once per invocation.
$(BUILD)/obj/llhttp/%.o: $(LLHTTP_DIR)/%.c | deps
	@mkdir -p $(dir $@)
	$(Q)$(CC) -std=c11 $(OPT) -g $(SANFLAGS) -I$(LLHTTP_INC) -c -o $@ $<

$(BUILD)/obj/%.o: %.c | deps
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj/%.o: %.cpp | deps
	@mkdir -p $(dir $@)
	@echo "  CXX   $<"
	$(Q)$(CXX) $(CPPFLAGS) $(CXXFLAGS) -c -o $@ $<

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
