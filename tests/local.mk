# tests/local.mk - what the tarball carries of the node and fuzz tests and of
# the scripts around them, so that scripts/test and scripts/demo work from an
# unpacked tarball as from a checkout (the C unit tests are in
# tests/unit/local.mk). Directories go whole, so a test file added to one is
# distributed without a change here.
EXTRA_DIST += \
	tests/package.json tests/package-lock.json \
	tests/integration tests/e2e tests/fuzz \
	docs
dist_noinst_SCRIPTS += \
	scripts/test scripts/bootstrap scripts/fuzz scripts/valgrind
EXTRA_DIST += scripts/bench

# What a run of the tests may have left in those directories.
dist-hook:
	rm -rf $(distdir)/tests/e2e/out $(distdir)/tests/fuzz/out
