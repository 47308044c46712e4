# shopping_upload: PGXS build
EXTENSION = shopping_upload
MODULE_big = shopping_upload
OBJS = \
	src/shopping_upload.o \
	src/settings.o \
	src/common.o \
	src/spi_util.o \
	src/extversion.o \
	src/text_clean.o \
	src/wake.o \
	src/registry.o \
	src/retry.o \
	src/json_util.o \
	src/payload.o \
	src/validate.o \
	src/validate_shipping.o \
	src/validate_trade.o \
	src/shipping.o \
	src/functions.o \
	src/http.o \
	src/http_sync.o \
	src/token.o \
	src/kinds.o \
	src/audit.o \
	src/upload.o \
	src/call.o \
	src/sync_call.o \
	src/setup_check.o \
	src/queue.o \
	src/queue_commit.o \
	src/queue_followup.o \
	src/queue_trade.o \
	src/trade_app.o \
	src/apps.o \
	src/alerts.o \
	src/launcher.o \
	src/worker.o
# The version of the SQL objects this library works with: the control
# file's default_version.  The worker waits while the database has another.
EXTVERSION := $(shell sed -n "s/^default_version *= *'\\(.*\\)'/\\1/p" $(EXTENSION).control)
DATA = shopping_upload--1.0.sql shopping_upload--1.1.sql shopping_upload--1.2.sql \
	shopping_upload--1.0--1.1.sql shopping_upload--1.1--1.2.sql
PGFILEDESC = "shopping_upload - WeChat uploadShoppingInfo from PostgreSQL"

REGRESS = foundation validate queue security shipping trade_shipping
REGRESS_OPTS = --load-extension=shopping_upload
TAP_TESTS = 1
ISOLATION = claim queue_race
ISOLATION_OPTS = --load-extension=shopping_upload

# scripts/ pass PG_CONFIG=/usr/lib/postgresql/NN/bin/pg_config, the server they
# test (on Debian /usr/bin/pg_config is a wrapper for the newest one
# installed).  By hand: pg_config from PATH, else the newest Debian one.
PG_CONFIG ?= pg_config
ifeq ($(shell command -v $(PG_CONFIG) 2>/dev/null),)
PG_CONFIG := $(lastword $(shell ls -v /usr/lib/postgresql/*/bin/pg_config 2>/dev/null))
endif
PKG_CONFIG ?= pkg-config

# PostgreSQL's headers are not -Wextra clean: read them as system headers so
# that -Wall -Wextra speaks of our code only.
PG_CPPFLAGS = -DSU_EXTVERSION='"$(EXTVERSION)"' \
	-isystem $(shell $(PG_CONFIG) --includedir-server) \
	$(shell $(PKG_CONFIG) --cflags json-c libcurl)
PG_CFLAGS = -Wall -Wextra
# CI and the scripts build with WERROR=1: a warning fails the build
ifdef WERROR
PG_CFLAGS += -Werror
endif
SHLIB_LINK = $(shell $(PKG_CONFIG) --libs json-c libcurl)

# rebuild an object when a header it includes changes
$(OBJS): CPPFLAGS += -MMD -MP

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The validators are pure C + json-c: their unit test needs no server.  One
# binary for both (one "N passed, N failed" line).
UNIT_CFLAGS = -Wall -Wextra -Werror -O1 -Isrc -Itest/unit $(shell $(PKG_CONFIG) --cflags json-c)
UNIT_SRCS = test/unit/test_validate.c test/unit/test_validate_shipping.c \
	test/unit/test_validate_trade.c test/unit/test_retry.c src/validate.c \
	src/validate_shipping.c src/validate_trade.c src/retry.c
test/unit/test_validate: $(UNIT_SRCS) test/unit/unit.h src/validate.h \
		src/validate_internal.h src/validate_shipping.h src/validate_trade.h \
		src/errcodes.h \
		src/retry.h
	$(CC) $(UNIT_CFLAGS) -o $@ $(UNIT_SRCS) \
		$(shell $(PKG_CONFIG) --libs json-c)

unit-test: test/unit/test_validate
	test/unit/test_validate

.PHONY: unit-test
EXTRA_CLEAN = test/unit/test_validate $(OBJS:.o=.d)

-include $(OBJS:.o=.d)
