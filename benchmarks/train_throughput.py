"""Training and encoding throughput, against this machine's matrix-product peak and a textbook loop.

Sections (all by default; pick with ``--sections``):

- ``train``: images/s of a full training step (forward, backward, Adam) for each
  architecture and batch size, as betavae runs it (the step :func:`betavae.training.setup.assemble`
  builds for ``train()``, at the architecture's learning rate, fed by
  :class:`betavae.training.batches.BatchStream`, with the settings of
  :mod:`betavae.training.performance`) beside the textbook loop (a ``DataLoader`` over a
  ``TensorDataset`` of float images, default layout, default Adam) on the same model
  and weights in PyTorch's stock modules (:func:`stock_modules`).
  Prints the speed-up, the step's floating-point operations (PyTorch's FlopCounterMode:
  convolutions and matrix products, forward and backward), the achieved GFLOP/s and its
  ratio to a large fp32 matrix product timed in the same run; with bf16 support, the
  bf16 autocast step and its speed-up over fp32.
- ``render``: dSprites training on batches rendered on the fly (read ahead in a
  background thread, and for comparison without) against the same images held in memory
  (gathered on the device, and read ahead from host memory through the same thread);
  then, on a CPU, the same beside a launch-bound training thread, a stand-in for a GPU's.
- ``encode``: encoding for the metrics (no gradients, large batches), against the peak.
- ``objectives``: the training step of each objective (:data:`betavae.objectives.OBJECTIVES`)
  beside ``beta``'s on the same architecture and batch, timed in interleaved rounds; the
  goal is at most 1.3× ``beta``'s step time (FactorVAE's discriminator included).
- ``profile``: where a training step's time goes, layer by layer (forward + backward of
  each layer timed alone), with each layer's own GFLOP/s; ``--profile-arch`` picks one.

Ratios measured side by side mean something on a noisy shared machine; raw times do not.
The textbook loop of each row runs in a child process just before betavae's step: some
of betavae's settings (:func:`betavae.training.performance.keep_freed_memory`) hold for the rest
of a process once switched on, and the textbook loop must run without them.

    python benchmarks/train_throughput.py [--seconds 2] [--batch-sizes 16,64,256,512]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

from betavae import data
from betavae.config import TrainConfig
from betavae.data.base import ImageDataset, ImageSplit, TensorSplit
from betavae.device import resolve_device
from betavae.metrics.representation import model_representation
from betavae.models import ARCHITECTURES, build, learning_rate
from betavae.models.layers import ImageTransposedConv
from betavae.objectives import OBJECTIVES, BetaVAELoss
from betavae.training import performance
from betavae.training.batches import BatchStream
from betavae.training.setup import assemble

Step = Callable[[], None]
SECTIONS = ("train", "render", "encode", "objectives", "profile")


def matmul_peak_gflops(device: torch.device, size: int = 2048, seconds: float = 2.0) -> float:
    """Best sustained fp32 GFLOP/s of an ``size``×``size`` matrix product on ``device``."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    out = torch.empty(size, size, device=device)
    repeats = 4 if device.type == "cpu" else 50
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        _synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            torch.mm(a, b, out=out)
        _synchronize(device)
        best = max(best, repeats * 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return best


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sprite_like_images(arch: str, count: int = 4096, seed: int = 0) -> torch.Tensor:
    """``uint8`` images of the architecture's size: dSprites for 64×64, Shapes for 28×28.

    Real rendered images rather than noise, so the loss and its gradients look like training.
    """
    name = "dsprites" if ARCHITECTURES[arch].image_size == 64 else "shapes"
    dataset = data.load(name, in_memory=False) if name == "dsprites" else data.load(name)
    index = np.random.default_rng(seed).choice(len(dataset), size=count, replace=False)
    return torch.from_numpy(dataset.images_at(np.sort(index)))


def _model(arch: str, device: torch.device, latent_dim: int = 10) -> torch.nn.Module:
    size = ARCHITECTURES[arch].image_size
    torch.manual_seed(0)
    return build(arch, latent_dim, (1, size, size)).to(device)


def stock_modules(model: torch.nn.Module) -> torch.nn.Module:
    """The same model and weights in PyTorch's stock modules: what a textbook user would write.

    betavae's architectures use in-place ReLUs and :class:`ImageTransposedConv` for the
    decoder's last layer; the textbook loop must not get those for free.
    """
    for module in model.modules():
        if isinstance(module, torch.nn.ReLU):
            module.inplace = False
        if isinstance(module, ImageTransposedConv):
            module.__class__ = torch.nn.ConvTranspose2d  # same parameters, PyTorch's forward
    return model


class HeldImages(ImageDataset):
    """A benchmark's images as the dataset :func:`assemble` takes: one split, trained on.

    The test split is the same images; nothing here reads it (a run's held-out loss is
    computed after its last step, and a benchmark times steps).
    """

    def __init__(self, split: ImageSplit, name: str = "benchmark") -> None:
        self.name = name
        self.image_shape = tuple(split.image_shape)
        self.train = self.test = split


def betavae_step(
    arch: str,
    images: torch.Tensor | None,
    batch_size: int,
    device: torch.device,
    precision: str = "fp32",
    split: ImageSplit | None = None,
    read_ahead: bool | None = None,
    objective: str = "beta",
) -> tuple[Step, Callable[[], None]]:
    """The step ``betavae train`` takes, from :func:`assemble`: the architecture's learning rate, the
    fused Adam, the models' memory format and, on CUDA, replayed from a CUDA graph; returns (step, close).

    Fed ``split`` (else ``images`` held in memory) through :class:`BatchStream`, as ``train()``
    feeds its dataset.
    """
    split = split if split is not None else TensorSplit(images)
    config = TrainConfig(arch=arch, objective=objective, latent_dim=10, batch_size=batch_size,
                         precision=precision, device=str(device))
    parts = assemble(config, HeldImages(split))
    stream = BatchStream(split, batch_size, seed=config.seed, start=0, device=parts.device,
                         read_ahead=read_ahead).__enter__()

    def step() -> None:
        parts.take_step(stream.next())

    return step, lambda: stream.__exit__(None, None, None)


def reference_step(arch: str, images: torch.Tensor, batch_size: int, device: torch.device) -> Step:
    """The textbook loop: ``DataLoader`` + ``TensorDataset`` of float images, NCHW, plain Adam.

    Plain Adam at the architecture's learning rate, as betavae's step has it: the loops differ
    in how they run, not in what they compute.
    """
    model = stock_modules(_model(arch, device))
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate(arch))
    loss_fn = BetaVAELoss(4.0, "bernoulli")
    loader = DataLoader(
        TensorDataset(images.float() / 255), batch_size=batch_size, shuffle=True, drop_last=True
    )
    batches = iter(loader)

    def step() -> None:
        nonlocal batches
        try:
            (x,) = next(batches)
        except StopIteration:
            batches = iter(loader)
            (x,) = next(batches)
        x = x.to(device)
        terms = loss_fn(model(x), x)
        optimizer.zero_grad()
        terms.loss.backward()
        optimizer.step()

    return step


def textbook_rate(arch: str, batch_size: int, seconds: float, device: torch.device) -> float:
    """Images/s of the textbook loop, timed in a fresh process just before betavae's step.

    A child process, because betavae's settings (the allocator's above all) hold for the
    rest of a process once switched on, and the textbook loop must run without them.
    """
    command = [
        sys.executable, __file__, "--textbook", f"{arch},{batch_size}", "--seconds", str(seconds), "--device",
        str(device),
    ]
    return float(subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()[-1])


def count_flops(step: Step) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def calls_per_second(step: Step, seconds: float, device: torch.device, warmup: int = 3) -> float:
    for _ in range(warmup):
        step()
    _synchronize(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        count += 1
    _synchronize(device)
    return count / (time.perf_counter() - start)


def train_section(args, device: torch.device) -> None:
    archs, batch_sizes = args.archs.split(","), [int(b) for b in args.batch_sizes.split(",")]
    images = {arch: sprite_like_images(arch, max(4096, 4 * max(batch_sizes))) for arch in archs}
    bf16 = performance.bf16_supported(device)

    memory_kept = performance.keep_freed_memory()
    rows = []
    for arch in archs:
        for batch_size in batch_sizes:
            textbook = ours = 0.0
            step, close = betavae_step(arch, images[arch], batch_size, device)
            flops = count_flops(step)
            for _ in range(args.repeats):  # alternating, the best of each: noise only ever slows a run down
                textbook = max(textbook, textbook_rate(arch, batch_size, args.seconds, device))
                ours = max(ours, batch_size * calls_per_second(step, args.seconds, device))
            close()
            half = None
            if bf16:
                step, close = betavae_step(arch, images[arch], batch_size, device, precision="bf16")
                half = batch_size * calls_per_second(step, args.seconds, device)
                close()
            rows.append((arch, batch_size, textbook, ours, flops / batch_size, half))
    peak = max(args.peak, matmul_peak_gflops(device))

    print(f"\n## training step, fp32 (freed memory kept: {memory_kept}; peak {peak:.0f} GFLOP/s)")
    header = (
        f"{'arch':<10} {'batch':>5} {'textbook':>9} {'betavae':>9} {'speed-up':>8} {'MFLOP/img':>10} "
        f"{'GFLOP/s':>8} {'of peak':>7}"
    )
    print(header + (f" {'bf16':>8} {'bf16 ×':>7} {'bf16/peak':>9}" if bf16 else "  (no bf16 on this device)"))
    for arch, batch_size, textbook, ours, flops_per_image, half in rows:
        achieved = ours * flops_per_image / 1e9
        line = (
            f"{arch:<10} {batch_size:>5} {textbook:>9.0f} {ours:>9.0f} {ours / textbook:>8.2f} "
            f"{flops_per_image / 1e6:>10.1f} {achieved:>8.1f} {achieved / peak:>7.2f}"
        )
        if half is not None:
            line += f" {half:>8.0f} {half / ours:>7.2f} {half * flops_per_image / 1e9 / peak:>9.2f}"
        print(line)
    print(
        "images/s; GFLOP/s and 'of peak' for betavae's fp32 step; bf16/peak: bf16 GFLOP/s against "
        "the fp32 peak"
    )


def objectives_section(args, device: torch.device) -> None:
    """Each objective's step against ``beta``'s: the same model, batch and data, in interleaved rounds."""
    arch, batch_size = args.objectives_arch, args.objectives_batch
    images = sprite_like_images(arch, max(4096, 4 * batch_size))
    steps = {name: betavae_step(arch, images, batch_size, device, objective=name) for name in OBJECTIVES}
    rates: dict[str, list[float]] = {name: [] for name in OBJECTIVES}
    for _ in range(args.repeats + 1):
        for name, (step, _) in steps.items():
            rates[name].append(batch_size * calls_per_second(step, args.seconds, device))
    for _, close in steps.values():
        close()
    print(f"\n## the step of each objective ({arch}, batch {batch_size}; best of {args.repeats + 1} "
          f"interleaved rounds)")
    print(f"{'objective':<10} {'images/s':>9} {'step time × beta':>17}")
    beta_rate = max(rates["beta"])
    for name, measured in rates.items():
        print(f"{name:<10} {max(measured):>9.0f} {beta_rate / max(measured):>17.2f}")
    print("goal: every objective's step at most 1.30× beta's")


def render_section(args, device: torch.device) -> None:
    performance.keep_freed_memory()
    dataset = data.load("dsprites")
    train = dataset.train
    held = TensorSplit(torch.from_numpy(dataset.images_at(train.indices[: args.render_images])))
    on_the_fly = type(train)(dataset, train.indices[: args.render_images])

    def training_rate(split, read_ahead: bool | None) -> float:
        step, close = betavae_step(
            "conv64", None, args.render_batch, device, split=split, read_ahead=read_ahead
        )
        rate = args.render_batch * calls_per_second(step, args.seconds, device)
        close()
        return rate

    print_feeds(
        f"dSprites training, conv64, batch {args.render_batch}: rendered on the fly against held in memory",
        compare_feeds(training_rate, held, on_the_fly, args.render_rounds),
    )
    if device.type == "cpu":  # on a GPU the real launch-bound thread has just been measured
        launch_bound_section(held, on_the_fly, args.render_rounds)


FEEDS = ("host memory, read ahead", "rendered, read ahead", "rendered in the loop")


def compare_feeds(
    rate: Callable[[object, bool | None], float], held: TensorSplit, on_the_fly, rounds: int
) -> tuple[list[float], dict[str, list[float]]]:
    """In-memory images/s per round, and each feed's ratio to it per round.

    "In memory" gathers on the device; "host memory, read ahead" sends the same held images
    through the reader thread without rendering them (on a GPU: pinned reads, a
    host-to-device copy per step), which tells a slow feed's two causes apart: the reader's
    mechanics, or the renderer's work beside the training thread. Each round times every
    feed between two in-memory timings and divides by the better of those: on a shared
    machine, timings minutes apart differ more than the feeds do.
    """
    in_memory: list[float] = []
    ratios: dict[str, list[float]] = {name: [] for name in FEEDS}
    for _ in range(rounds):
        first = rate(held, None)
        rates = dict(
            zip(FEEDS, (rate(held, True), rate(on_the_fly, True), rate(on_the_fly, False)), strict=True)
        )
        in_memory.append(max(first, rate(held, None)))
        for name in FEEDS:
            ratios[name].append(rates[name] / in_memory[-1])
    return in_memory, ratios


def print_feeds(title: str, results: tuple[list[float], dict[str, list[float]]]) -> None:
    in_memory, ratios = results
    baseline = float(np.median(in_memory))
    print(f"\n## {title}")
    print(f"{'feed':<24} {'images/s':>9}  of in memory (median over rounds, range)")
    print(
        f"{'in memory':<24} {baseline:>9.0f}  {1:>4.2f}  ({min(in_memory):.0f}–{max(in_memory):.0f} images/s)"
    )
    for name, values in ratios.items():
        median = float(np.median(values))
        print(f"{name:<24} {median * baseline:>9.0f}  {median:>4.2f}  ({min(values):.2f}–{max(values):.2f})")


LAUNCHES_PER_STEP = 1900  # ~5 ms of tiny CPU ops: the Python side of a conv64 step at batch 256 on an H100


def launch_bound_section(
    held: TensorSplit, on_the_fly, rounds: int, batch_size: int = 256, seconds: float = 3.0
) -> None:
    """Does the reader thread slow a training thread that is bound by launching kernels?

    On a GPU the training thread spends a step launching ~100 kernels; each launch
    releases and retakes the interpreter lock, which a rendering thread could hold. The
    stand-in: a thread doing ``LAUNCHES_PER_STEP`` tiny CPU tensor ops (each releases
    the lock the same way) and taking one batch per step, fed in memory or rendered.
    Its one-thread setting is inherited by the reader thread (torch gives a new thread
    the process's thread count), so unlike a GPU machine's reader it has no thread pool
    to wake: this stand-in shows what rendering beside the launching thread costs it, not
    what the pool costs. On a 2-core VM that includes the cores slowing each other, so it
    cannot single out the interpreter lock either (docs/notes/performance.md, "Rendering and encoding").
    """
    counter = torch.zeros(16)

    def launching_rate(split, read_ahead: bool | None) -> float:
        with BatchStream(
            split, batch_size, seed=0, start=0, device=torch.device("cpu"), read_ahead=read_ahead
        ) as stream:
            steps, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                for _ in range(LAUNCHES_PER_STEP):
                    torch.add(counter, 1, out=counter)
                stream.next()
                steps += 1
            return steps * batch_size / (time.perf_counter() - start)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a launching thread, not a computing one
    try:
        rates = compare_feeds(launching_rate, held, on_the_fly, rounds)
    finally:
        torch.set_num_threads(threads)
    print_feeds(
        f"the same with a launch-bound training thread ({LAUNCHES_PER_STEP} tiny ops a step, "
        f"batch {batch_size})",
        rates,
    )


def encode_section(args, device: torch.device) -> None:
    performance.keep_freed_memory()
    print(f"\n## encoding for the metrics (μ, no gradients), {args.encode_images} images a call")
    print(f"{'arch':<10} {'images/s':>9} {'MFLOP/img':>10} {'GFLOP/s':>8} {'of peak':>7}")
    rows = []
    for arch in args.archs.split(","):
        images = sprite_like_images(arch, args.encode_images).numpy()
        model = _model(arch, device).eval()
        represent = model_representation(model)
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            model.encode(torch.from_numpy(images[:1]).to(device).float())
        rate = len(images) * calls_per_second(
            lambda represent=represent, images=images: represent(images), args.seconds, device, warmup=1
        )
        rows.append((arch, rate, counter.get_total_flops()))
    peak = max(args.peak, matmul_peak_gflops(device))
    for arch, rate, flops in rows:
        print(
            f"{arch:<10} {rate:>9.0f} {flops / 1e6:>10.2f} {rate * flops / 1e9:>8.1f} "
            f"{rate * flops / 1e9 / peak:>7.2f}"
        )


def profile_section(args, device: torch.device) -> None:
    """Each layer's forward + backward timed alone on the activations a real batch gives it."""
    performance.keep_freed_memory()
    arch, batch_size = args.profile_arch, args.profile_batch
    model = _model(arch, device).to(memory_format=performance.MEMORY_FORMAT)
    layers = [(f"encoder[{i}]", layer) for i, layer in enumerate(model.encoder)] + [
        (f"decoder[{i}]", layer) for i, layer in enumerate(model.decoder)
    ]
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = [
        layer.register_forward_hook(
            lambda _, inputs, output, name=name: seen.__setitem__(name, (inputs[0], output))
        )
        for name, layer in layers
    ]
    x = performance.fast_layout(sprite_like_images(arch, batch_size).to(device).float() / 255)
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    peak = max(args.peak, matmul_peak_gflops(device))
    print(f"\n## where a training step's time goes: {arch}, batch {batch_size}, fp32 (each layer alone)")
    print(f"{'layer':<28} {'input':<18} {'ms':>6} {'share':>6} {'MFLOP':>8} {'GFLOP/s':>8} {'of peak':>7}")
    rows, total_ms = [], 0.0
    for name, layer in layers:
        inputs, output = seen[name]
        if isinstance(layer, (torch.nn.Flatten, torch.nn.Unflatten)):  # views, no work
            continue
        if isinstance(layer, torch.nn.ReLU):  # autograd refuses an in-place op on a leaf: timed out of place
            layer = torch.nn.ReLU()
        inputs = inputs.detach().clone().requires_grad_(name != "encoder[0]")  # images need no gradient
        grad = torch.randn_like(output)
        wrt = [t for t in (inputs, *layer.parameters()) if t.requires_grad]

        def forward_backward(layer=layer, inputs=inputs, grad=grad, wrt=wrt) -> None:
            for tensor in wrt:  # no accumulation into earlier gradients: a step starts from none
                tensor.grad = None
            layer(inputs).backward(grad)

        flops = count_flops(forward_backward)
        ms = 1e3 / calls_per_second(forward_backward, args.seconds / 4, device)
        total_ms += ms
        rows.append((f"{name} {type(layer).__name__}", tuple(inputs.shape[1:]), ms, flops))
    step, close = betavae_step(arch, sprite_like_images(arch, 4 * batch_size), batch_size, device)
    step_ms = 1e3 / calls_per_second(step, args.seconds, device)
    step_flops = count_flops(step)
    close()
    for name, shape, ms, flops in rows:
        rate = flops / ms / 1e6
        print(
            f"{name:<28} {str(shape):<18} {ms:>6.2f} {ms / total_ms:>6.1%} {flops / 1e6:>8.1f} "
            f"{rate:>8.1f} {rate / peak:>7.2f}"
        )
    layer_flops = sum(row[3] for row in rows)
    print(
        f"{'all layers alone':<47} {total_ms:>6.2f} {'':>6} {layer_flops / 1e6:>8.1f} "
        f"{layer_flops / total_ms / 1e6:>8.1f} {layer_flops / total_ms / 1e6 / peak:>7.2f}"
    )
    print(
        f"{'the whole step (loss, Adam, data)':<47} {step_ms:>6.2f} {'':>6} {step_flops / 1e6:>8.1f} "
        f"{step_flops / step_ms / 1e6:>8.1f} {step_flops / step_ms / 1e6 / peak:>7.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sections", default=",".join(SECTIONS), help=",".join(SECTIONS))
    parser.add_argument("--seconds", type=float, default=2.0, help="timing per configuration")
    parser.add_argument("--batch-sizes", default="16,64,256,512")
    parser.add_argument(
        "--repeats", type=int, default=2, help="timings of each training step, alternating; the best counts"
    )
    parser.add_argument("--archs", default=",".join(ARCHITECTURES))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--render-batch", type=int, default=64)
    parser.add_argument(
        "--render-images", type=int, default=20_000, help="images the render comparison cycles over"
    )
    parser.add_argument(
        "--render-rounds", type=int, default=3, help="interleaved rounds of the render comparison"
    )
    parser.add_argument("--encode-images", type=int, default=4096)
    parser.add_argument("--objectives-arch", default="conv64")
    parser.add_argument("--objectives-batch", type=int, default=64)
    parser.add_argument("--profile-arch", default="conv64")
    parser.add_argument("--profile-batch", type=int, default=64)
    # the child of textbook_rate
    parser.add_argument("--textbook", metavar="ARCH,BATCH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.textbook:
        arch, batch_size = args.textbook.split(",")
        device = resolve_device(args.device)
        step = reference_step(
            arch, sprite_like_images(arch, max(4096, 4 * int(batch_size))), int(batch_size), device
        )
        print(int(batch_size) * calls_per_second(step, args.seconds, device))
        return
    sections = args.sections.split(",")
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")

    device = resolve_device(args.device)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{torch.get_num_threads()} CPU threads"
    )
    print(f"torch {torch.__version__}, {name}")
    # The larger of the peaks timed before and after each section: a ratio against a peak
    # slowed by a noisy neighbour would flatter us.
    args.peak = matmul_peak_gflops(device)
    print(f"fp32 matrix-product peak (2048²): {args.peak:.1f} GFLOP/s")
    for section in SECTIONS:
        if section in sections:
            globals()[f"{section}_section"](args, device)


if __name__ == "__main__":
    main()
