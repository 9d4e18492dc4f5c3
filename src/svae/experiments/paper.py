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

# Table 1: MNIST, nats per image; per d: (N-VAE, S-VAE) for LL, ELBO, RE, KL.
MNIST_TABLE1 = {
    2: {"ll": (-135.73, -132.50), "elbo": (-137.08, -133.72), "re": (-129.84, -126.43), "kl": (7.24, 7.28)},
    5: {"ll": (-110.21, -108.43), "elbo": (-112.98, -111.19), "re": (-100.16, -97.84), "kl": (12.82, 13.35)},
    10: {"ll": (-93.84, -93.16), "elbo": (-98.36, -97.70), "re": (-78.93, -77.03), "kl": (19.44, 20.67)},
    20: {"ll": (-88.90, -89.02), "elbo": (-94.79, -96.15), "re": (-71.29, -67.65), "kl": (23.50, 28.50)},
    40: {"ll": (-88.93, -90.87), "elbo": (-94.91, -101.26), "re": (-71.14, -67.75), "kl": (23.77, 33.50)},
}

# Table 2: k-NN accuracy (%) on the latent means; per d and number of labels: (N-VAE, S-VAE).
MNIST_TABLE2 = {
    2: {100: (72.6, 77.9), 600: (80.8, 84.9), 1000: (81.7, 85.6)},
    5: {100: (81.8, 87.5), 600: (90.9, 92.8), 1000: (92.0, 93.4)},
    10: {100: (75.7, 80.6), 600: (88.4, 91.2), 1000: (90.2, 92.8)},
    20: {100: (71.3, 72.8), 600: (88.3, 89.1), 1000: (90.1, 91.1)},
    40: {100: (72.3, 67.7), 600: (88.0, 87.4), 1000: (90.3, 90.4)},
}
