"""The compiled CPU loops of ``kernels.cpp``, built on first use, and when to use them.

A training step samples a few dozen to a few hundred points; at that size the cost of the vMF's
sampler and of its KL is the number of small tensor operations, not arithmetic, and one C++ loop
replaces dozens of them. The torch code in ``distributions/wood.py``, ``distributions/householder.py``
and ``special.py`` stays the reference and the path for every other device: the loops follow it
operation for operation, and the tests hold the two together. They are built with torch's JIT
extension builder, which needs a C++ compiler and ninja (the ``ninja`` package, a dependency,
supplies the latter); the build takes half a minute once and is cached, in
``TORCH_EXTENSIONS_DIR`` or ``~/.cache/torch_extensions``. Where it fails, a warning says why and
the torch code runs. ``SVAE_NATIVE=0`` turns the loops off.
"""
from __future__ import annotations

import os
import shutil
import warnings
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import torch


def _put_ninja_on_path():
    """torch's builder runs ``ninja`` from PATH; the ``ninja`` package installs it beside the
    interpreter, which a virtual environment used without activating it leaves off PATH."""
    if shutil.which("ninja") is None:
        import ninja

        os.environ["PATH"] = os.pathsep.join([ninja.BIN_DIR, os.environ.get("PATH", "")])


@lru_cache(maxsize=None)
def kernels():
    """The compiled module, or None when it is turned off or cannot be built."""
    if os.environ.get("SVAE_NATIVE", "1") == "0":
        return None
    try:
        from torch.utils.cpp_extension import load

        _put_ninja_on_path()
        # OpenMP: ATen's parallel_for runs serially in code compiled without it.
        return load("svae_kernels", [str(Path(__file__).with_name("kernels.cpp"))],
                    extra_cflags=["-O3", "-fopenmp"], extra_ldflags=["-fopenmp"])
    except Exception as error:  # no compiler or no ninja: the torch code does the same work
        warnings.warn(f"svae: the compiled loops of svae/kernels.cpp are unavailable, running the torch "
                      f"code ({error})", RuntimeWarning, stacklevel=2)
        return None


_disabled = False


@contextmanager
def disabled():
    """Run the torch code alone inside this block, as on other devices (to compare the two)."""
    global _disabled
    previous, _disabled = _disabled, True
    try:
        yield
    finally:
        _disabled = previous


def usable(*tensors: torch.Tensor) -> bool:
    """Whether the loops can take these tensors: all on the CPU, of one dtype, float32 or float64,
    and the loops built and not disabled."""
    dtype = tensors[0].dtype
    return (
        not _disabled
        and dtype in (torch.float32, torch.float64)
        and all(t.device.type == "cpu" and t.dtype == dtype for t in tensors)
        and kernels() is not None
    )


def rows(shape: torch.Size, vectors=(), scalars=()):
    """The inputs of a loop over samples of ``shape`` = batch + (m,), whose layout is contiguous
    rows of m numbers: each of ``vectors`` broadcast to ``shape`` and each of ``scalars`` to
    ``shape[:-1]``, contiguous."""
    def flat(t, target):  # each view is a dispatched operation: skip them when none is needed
        return t if t.shape == target and t.is_contiguous() else t.expand(target).contiguous()

    return [flat(t, shape) for t in vectors], [flat(t, shape[:-1]) for t in scalars]


def compiled(name: str, reference):
    """The kernel ``name`` as a differentiable function of its tensor inputs, with
    ``name + "_backward"`` (grad_output, *inputs) -> gradients of the leading inputs as backward.

    ``reference`` is the torch code the kernel follows: a double backward (``create_graph=True``)
    differentiates it, so the compiled path supports everything the torch path does.
    """

    class Compiled(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *inputs):
            ctx.save_for_backward(*inputs)
            return getattr(kernels(), name)(*inputs)

        @staticmethod
        def backward(ctx, grad_output):
            inputs = ctx.saved_tensors
            if torch.is_grad_enabled():
                wanted = [t for t in inputs if t.requires_grad]
                grads = iter(torch.autograd.grad(reference(*inputs), wanted, grad_output, create_graph=True))
                return tuple(next(grads) if t.requires_grad else None for t in inputs)
            grads = getattr(kernels(), name + "_backward")(grad_output.contiguous(), *inputs)
            return *grads, *(None,) * (len(inputs) - len(grads))

    Compiled.__name__ = Compiled.__qualname__ = f"Compiled_{name}"
    return Compiled.apply
