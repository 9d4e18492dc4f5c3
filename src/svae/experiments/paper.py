"""The reference numbers of Davidson et al. (2018), as reported (second-hand copies in PAPER.md)."""

# Table 4: link prediction, test AUC and AP in %, mean and std over runs.
LINKPRED = {
    ("cora", "normal"): {"auc": (92.7, 0.2), "ap": (93.2, 0.4)},
    ("cora", "vmf"): {"auc": (94.1, 0.1), "ap": (94.1, 0.3)},
    ("citeseer", "normal"): {"auc": (90.3, 0.5), "ap": (91.5, 0.5)},
    ("citeseer", "vmf"): {"auc": (94.7, 0.2), "ap": (95.2, 0.2)},
    ("pubmed", "normal"): {"auc": (97.1, 0.0), "ap": (97.1, 0.0)},
    ("pubmed", "vmf"): {"auc": (96.0, 0.1), "ap": (96.0, 0.1)},
}

# Kipf & Welling (2016)'s own VGAE, AUC and AP in %.
KIPF_VGAE = {"cora": (91.4, 92.6), "citeseer": (90.8, 92.0), "pubmed": (94.4, 94.7)}
