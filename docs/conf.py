"""Sphinx configuration: `make docs` builds the site into docs/_build/html (warnings are errors)."""
import svae

project = "svae"
author = "the svae developers"
release = version = svae.__version__

extensions = [
    "myst_parser",  # the pages are Markdown, readable on GitHub as they are
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # Google-style docstrings (Args:, Returns:)
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "furo"
html_title = f"svae {version}"
