"""linnet throughput and memory benchmarks: ``python -m benchmarks [--backend numpy|cupy] [--json PATH]``.

Workloads (float64):

- **W1** one large net: widths 256, depth N in {2, 4, 8, 16}, squared loss from data (m = 4096), one full-batch GD
  step; achieved GFLOP/s (counting only the 3N - 2 products the closed form needs) against NumPy's (CuPy's) own
  matmul rate at the same size measured in the same run; baseline: forward/backward on the raw data.
- **W2** an ensemble: B = 4096 nets, depth 4, width 8, one shared whitened problem, GD steps; net·steps/s
  against a plain batched-matmul implementation and a Python loop over the nets; peak memory at B = 65 536 and
  allocation growth over 10^4 steps.
- **W3** curvature: depth 3, widths 16 (768 parameters): dense Hessian; top eigenvalue by scipy ``eigsh`` on exact
  HVPs (count of HVPs, accuracy); batched over 256 nets.
- **W4** gradient flow: the adaptive integrator of :mod:`linnet.train` on a W2-sized ensemble to a fixed time.

Every speed figure is a ratio to a baseline measured side by side in the same run (interleaved repeats, best
time kept); nothing here is a timed test.
"""
