"""`make bench`: every benchmark, one after the other, each in its own process.

`python -m bench [NAME ...]` runs the named ones (default: all). Each prints its own figures
and writes `bench/results/<name>.json`; extra arguments for one benchmark go after `--`, e.g.
`python -m bench soak -- --minutes 2`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

# Cheapest first, so a broken environment shows up before the long ones.
BENCHMARKS = {
    "model": ["ml.bench_model"],
    "inference": ["bench.inference"],
    "hot_swap": ["bench.hot_swap"],
    "feedback": ["bench.feedback"],
    "notifier": ["bench.notifier"],
    "dashboard": ["bench.dashboard"],
    "soak": ["bench.soak"],
}


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks and say how long each took."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"any of {', '.join(BENCHMARKS)} (default: all)")
    argv = sys.argv[1:] if argv is None else argv
    # What follows `--` belongs to the benchmark, not to this parser.
    own, extra = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    )
    args = parser.parse_args(own)
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    names = args.names or list(BENCHMARKS)
    if extra and len(names) != 1:
        parser.error("extra arguments need exactly one benchmark name")
    failed = []
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        started = time.monotonic()
        code = subprocess.run([sys.executable, "-m", *BENCHMARKS[name], *extra]).returncode
        print(
            f"=== {name}: {'ok' if code == 0 else f'failed ({code})'} in "
            f"{time.monotonic() - started:.0f} s",
            flush=True,
        )
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
