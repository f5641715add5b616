"""Building, evaluating and benchmarking the cat/dog classifier."""
