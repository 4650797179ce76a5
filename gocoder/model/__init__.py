"""The network and its files: the planner/generator recursion and the GPT baseline (model),
weight-only quantization (quant), and save, load and export (checkpoint), which training and
inference both import."""
