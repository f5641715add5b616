"""What the tests and the benchmarks both run: service processes, the whole stack, the fake
Discord, a browser. Neither imports the other's code; both import this."""
