"""Tensor maths, no files: exactly-sparse parametrization and its sparse autograd, top-k,
hard-concrete gates, projection onto the p-sparse set, bitwise comparison.

Everything here takes and returns tensors and modules; what a file holds is `formats/`,
what a command does is `stages/`.
"""
