"""The training layer: what :func:`~betavae.training.loop.train` and the benchmarks share.

- :mod:`~betavae.training.setup`: a run's config from its sources, its folder, and
  :func:`~betavae.training.setup.assemble`, everything a run builds before its first step
  (data, model, objective, optimisers, noise, the step function).
- :mod:`~betavae.training.loop`: :func:`~betavae.training.loop.train`, the loop itself.
- :mod:`~betavae.training.steps`: one training step, eager or replayed from a CUDA graph.
- :mod:`~betavae.training.batches`: which images each step sees, delivered on the device.
- :mod:`~betavae.training.performance`: the settings that make training and encoding fast.
- :mod:`~betavae.training.meters`: the loss window between log points, the training clock,
  the check that the weights stayed finite.
- :mod:`~betavae.training.checkpoints`: saving a run, and resuming it only as the same experiment.
- :mod:`~betavae.training.results`: the held-out loss and what a finished run adds to its folder.
- :mod:`~betavae.training.faults`: the errors a run stops with, and what they leave behind.
- :mod:`~betavae.training.log`: the loss log (JSON lines and TensorBoard).
- :mod:`~betavae.training.tracking`: disentanglement measured while a run trains.
- :mod:`~betavae.training.interrupt`: Ctrl-C and SIGTERM answered at a step boundary.
- :mod:`~betavae.training.packed`: runs that differ only in seed and β, trained as one network.

This file imports nothing: :mod:`betavae.objectives`, :mod:`betavae.config` and the metrics
import :mod:`~betavae.training.performance`, and importing it runs this file first; were the
loop imported here, it would import the objectives while they are half-initialised.
"""
