#!/bin/sh
# Install one image's lock into /opt/venv: nothing outside the lock (--no-deps; the lock is
# complete, which `pip check` proves), wheels only (no compiler). Then what never runs in the
# image goes: pip itself, setuptools unless the lock names it, the packages' own test suites.
set -eu
/opt/venv/bin/pip install --no-deps --only-binary=:all: -r "$1"
/opt/venv/bin/pip check
grep -qi '^setuptools==' "$1" || /opt/venv/bin/pip uninstall --quiet --yes setuptools
/opt/venv/bin/pip uninstall --quiet --yes pip
find /opt/venv/lib -depth -type d -name tests -prune -exec rm -rf {} +
