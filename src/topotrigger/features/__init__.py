"""Features: event selection, high- and low-level features, scaling, balanced train/test datasets.

Layers: `kernels` (the physics: NumPy/Numba, no Spark, no Arrow), `arrow` (Arrow batches <->
kernel arrays), `scaling` (scalers fitted on train), `layouts` (compact and 2020 "anchor" output
columns), `stage` (Spark: mapInArrow over partitions, cut flow, balancing, split, write).
"""
