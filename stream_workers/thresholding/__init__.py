"""Telemanom's nonparametric dynamic thresholding: the 2018 batch run and a causal stream."""
