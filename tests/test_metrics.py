"""Ranking metrics against scikit-learn (test-time ground truth only)."""
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from svae.metrics import average_precision, roc_auc


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", [False, True])
def test_auc_and_ap_match_sklearn(seed, ties):
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(200, generator=g) + 0.7
    neg = torch.randn(300, generator=g)
    if ties:  # coarse scores: many ties within and across classes
        pos, neg = pos.round(decimals=1), neg.round(decimals=1)
    y = torch.cat([torch.ones(200), torch.zeros(300)]).numpy()
    s = torch.cat([pos, neg]).numpy()
    assert roc_auc(pos, neg) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert average_precision(pos, neg) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_extremes_and_errors():
    assert roc_auc(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0])) == 1.0
    assert roc_auc(torch.tensor([0.0]), torch.tensor([1.0])) == 0.0
    assert roc_auc(torch.tensor([1.0]), torch.tensor([1.0])) == 0.5
    assert average_precision(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0])) == 1.0
    with pytest.raises(ValueError, match="at least one positive and one negative"):
        roc_auc(torch.tensor([]), torch.tensor([1.0]))
