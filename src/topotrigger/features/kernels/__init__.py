"""Pure numerical kernels of the features stage: NumPy arrays in, NumPy arrays out.

Nothing here imports Spark, Arrow or awkward (a test enforces it), so every definition can be
tested on hand-built events and reused by inference.
"""
