# tests/unit/local.mk - C unit tests (TAP), run by make check
