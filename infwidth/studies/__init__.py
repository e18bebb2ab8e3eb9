"""The seed studies, apart from the core; each uses only the core's public API.

- :mod:`infwidth.studies.width_power_law` (seed 000): power law in width toward the kernel.
- :mod:`infwidth.studies.filter_clusters` (seed 001): per-filter label clusters and SNR.
- :mod:`infwidth.studies.sequential_vs_parallel` (seed 002): deep sequential vs wide
  parallel residual networks.
- :mod:`infwidth.studies.depth_cutoff` (seed 004): deep limits and the depth cut-off.

Seed 003 (eigenspace restructuring) is the core itself; its figures are ``paper_figures/``.
"""
