"""The benchmark report that ``tensorpress bench`` prints.

One module per kernel family (adam.py, ...) with ``run(quick) -> str``: a titled table of
elements/s for tensorpress (C and Numba), naive NumPy and the peer (torch) where installed,
with the ratios and the percent of the memory-bandwidth bound measured in the same run.
``FAMILIES`` lists them in the order the report prints them.
"""

FAMILIES = ["adam", "quant", "topk", "huffman", "pipeline"]
