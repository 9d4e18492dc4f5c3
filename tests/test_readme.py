"""The Python examples of the README and of the tutorial pages run as written."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})


def test_readme_starts_with_the_two_commands():
    first_block = re.search(r"```bash\n(.*?)```", README.read_text(), flags=re.S).group(1)
    assert first_block.splitlines()[0].startswith("make demo")
    assert first_block.splitlines()[1].startswith("make test")


def test_pyro_tutorial_runs_and_finds_the_posterior():
    """docs/pyro.md's code, as one script, and the three claims the page makes about its output."""
    page = Path(__file__).resolve().parents[1] / "docs" / "pyro.md"
    code = "\n".join(re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S))
    namespace = {}
    exec(compile(code, str(page), "exec"), namespace)
    loc, true_loc, s = namespace["loc"], namespace["true_loc"], namespace["s"]
    kappa, kappa_q, mle_kappa = namespace["kappa"], namespace["kappa_q"], namespace["mle_kappa"].item()
    assert loc @ true_loc > 0.999
    assert abs(kappa / mle_kappa - 1) < 0.02
    assert abs(kappa_q / (kappa * s.norm().item()) - 1) < 0.1
