"""The benchmark report that ``tensorpress bench`` prints.

One module per kernel family (adam.py, ...) with ``run(quick, plot) -> report.Report``: a
titled table of elements/s for tensorpress (C and Numba), naive NumPy and the peer (torch)
where installed, with the ratios and the percent of the memory-bandwidth bound measured in the
same run (``Report.text()`` is what the command prints); with ``plot``, also the series that
plot.py draws for ``tensorpress bench --plot DIR``. ``FAMILIES`` lists them in the order the
report prints them.
"""

FAMILIES = ["adam", "adam_mixed", "quant", "topk", "huffman", "lossless", "pipeline"]
