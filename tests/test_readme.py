"""The Python examples of the README and of the tutorial pages run as written."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


def test_readme_python_blocks_run():
    blocks = _python_blocks(README)
    assert blocks
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})


def test_readme_starts_with_the_two_commands():
    first_block = re.search(r"```bash\n(.*?)```", README.read_text(), flags=re.S).group(1)
    assert first_block.splitlines()[0].startswith("make demo")
    assert first_block.splitlines()[1].startswith("make test")


def _run_page(relative: str) -> dict:
    """A page's Python blocks, in order, as one script; its names afterwards."""
    page = README.parent / relative
    code = "\n".join(_python_blocks(page))
    namespace = {}
    exec(compile(code, str(page), "exec"), namespace)
    return namespace


def test_pyro_tutorial_runs_and_finds_the_posterior():
    """docs/pyro.md, and the three claims the page makes about its output."""
    names = _run_page("docs/pyro.md")
    loc, true_loc, s = names["loc"], names["true_loc"], names["s"]
    kappa, kappa_q, mle_kappa = names["kappa"], names["kappa_q"], names["mle_kappa"].item()
    assert loc @ true_loc > 0.999
    assert abs(kappa / mle_kappa - 1) < 0.02
    assert abs(kappa_q / (kappa * s.norm().item()) - 1) < 0.1


def test_vmf_latent_tutorial_trains():
    """docs/tutorials/vmf_latent.md: the ELBO it prints rises from about -1200 to about -24."""
    names = _run_page("docs/tutorials/vmf_latent.md")
    assert names["before"] < -1000 and names["after"] > -40


def test_graph_tutorial_predicts_links():
    """docs/tutorials/graph.md: the test AUC it prints is near the 0.82 that the communities allow."""
    names = _run_page("docs/tutorials/graph.md")
    assert names["auc"] > 0.75
