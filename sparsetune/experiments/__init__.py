"""Experiments: the paper's grid (train + eval over methods × tasks × seeds × p) and its report."""
