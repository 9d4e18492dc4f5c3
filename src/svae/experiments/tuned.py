"""Committed hyper-parameters per experiment, chosen on validation data only.

LINKPRED: overrides of LinkPredConfig's defaults (Kipf & Welling's protocol: Adam lr 0.01,
200 epochs, hidden 32, latent 16, no dropout, dense weighted cross-entropy) per (dataset, latent).
How they were chosen: `scripts/tune_linkpred.py` grids, each configuration trained on 3 split
seeds (0, 1, 2), ranked by mean validation AUC; the test edges were never evaluated during the
search. The grids and their rankings are in docs/linkpred.md.
"""

LINKPRED: dict = {}
