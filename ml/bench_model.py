"""Model throughput against the headless backbone: `python -m ml.bench_model`.

The reference is the same file cut at the ImageNet logits (the plain EfficientNet-Lite2
classifier), so the ratio shows what the second backbone, the cat/dog head and pet_score add to
a forward pass; `--reference FILE` compares with another model instead (e.g. the previous one).
"""

from __future__ import annotations

import argparse
import io
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image

from catdog.images import ImageLimits, load_image
from catdog.model import INPUT_NAME, ModelCard, card_path_for
from catdog.preprocessing import preprocess
from ml import imagenet
from ml.card import DEFAULT_MODEL, SPEC

logger = logging.getLogger(__name__)


def imagenet_logits_name(model: onnx.ModelProto) -> str:
    """The output of the Gemm whose weight has one row per ImageNet class."""
    shapes = {item.name: tuple(item.dims) for item in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Gemm" and shapes.get(node.input[1], (0,))[0] == imagenet.CLASSES:
            return node.output[0]
    raise ValueError("no 1000-class Gemm in the graph: not an EfficientNet-Lite export")


def extract_reference(model_path: Path, out_path: Path) -> Path:
    """Write the backbone-only subgraph of `model_path`: `image` to ImageNet logits."""
    name = imagenet_logits_name(onnx.load(str(model_path), load_external_data=False))
    onnx.utils.extract_model(str(model_path), str(out_path), [INPUT_NAME], [name])
    return out_path


def session(path: Path, threads: int) -> ort.InferenceSession:
    """Built with the same options as the service's Classifier."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def time_runs(
    sessions: dict[str, ort.InferenceSession], batch_size: int, runs: int
) -> dict[str, list[float]]:
    """Seconds of every timed run of each session.

    Runs alternate between the sessions one by one, so a busy neighbour on a shared machine
    slows both alike and the ratio stays meaningful even when absolute numbers move.
    """
    rng = np.random.default_rng(0)
    # Each session at its own input size: the reference may be another model.
    feeds = {
        name: {INPUT_NAME: rng.standard_normal((batch_size, *input_shape(sess))).astype(np.float32)}
        for name, sess in sessions.items()
    }
    for name, sess in sessions.items():
        for _ in range(3):
            sess.run(None, feeds[name])
    samples: dict[str, list[float]] = {name: [] for name in sessions}
    names = list(sessions)
    for run in range(runs):
        # ABBA order: whichever runs second in a pair does not always get the warmer caches.
        for name in names if run % 2 == 0 else names[::-1]:
            sess = sessions[name]
            start = time.perf_counter()
            sess.run(None, feeds[name])
            samples[name].append(time.perf_counter() - start)
    return samples


def input_shape(sess: ort.InferenceSession) -> tuple[int, int, int]:
    """Channels, height and width of a session's image input."""
    channels, height, width = sess.get_inputs()[0].shape[1:]
    return int(channels), int(height), int(width)


def preprocess_seconds(model_path: Path, repeats: int = 20) -> float:
    """Median time of load_image + preprocess on a 500x375 JPEG, the dataset's typical size."""
    card = card_path_for(model_path)
    spec = ModelCard.load(card).preprocessing if card.exists() else SPEC
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)).save(buffer, "JPEG")
    data = buffer.getvalue()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        preprocess(load_image(data, spec, ImageLimits()), spec)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m ml.bench_model",
        description="Images per second of the model and of its headless backbone, and ratios.",
    )
    parser.add_argument("model", type=Path, nargs="?", default=DEFAULT_MODEL)
    parser.add_argument(
        "--reference", type=Path, help="reference ONNX (default: the model cut at the logits)"
    )
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (service: 1)")
    parser.add_argument("--runs", type=int, default=40, help="timed runs per model and batch")
    parser.add_argument(
        "--max-ratio",
        type=float,
        help="exit 1 if the best-case model/reference time ratio exceeds this at any batch",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Benchmark and print a table."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory() as scratch:
        reference = args.reference or extract_reference(args.model, Path(scratch) / "ref.onnx")
        sessions = {
            "model": session(args.model, args.threads),
            "backbone": session(reference, args.threads),
        }
        print(f"model: {args.model}  reference: {args.reference or 'model cut at ImageNet logits'}")
        print(f"onnxruntime {ort.__version__}, intra-op threads {args.threads}")
        print(
            f"{'batch':>5} {'model img/s':>12} {'backbone img/s':>15} "
            f"{'median ratio':>13} {'best ratio':>11}"
        )
        worst = 0.0
        for batch_size in args.batch_sizes:
            samples = time_runs(sessions, batch_size, args.runs)
            model = statistics.median(samples["model"])
            backbone = statistics.median(samples["backbone"])
            ratio = model / backbone
            # The fastest run is the one least disturbed by other processes.
            best_ratio = min(samples["model"]) / min(samples["backbone"])
            worst = max(worst, best_ratio)
            print(
                f"{batch_size:>5} {batch_size / model:>12.1f} {batch_size / backbone:>15.1f} "
                f"{ratio:>13.3f} {best_ratio:>11.3f}"
            )
    milliseconds = preprocess_seconds(args.model) * 1e3
    print(f"load_image + preprocess of a 500x375 JPEG: {milliseconds:.1f} ms")
    if args.max_ratio is not None and worst > args.max_ratio:
        print(f"model is {worst:.3f}x the backbone's time, over {args.max_ratio}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
