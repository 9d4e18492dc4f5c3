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

The loops are also ``torch.library`` operators (``torch.ops.svae.*``), which torch.compile keeps
as opaque calls and torch.func batches; and this module says where code may read values back
from tensors (:func:`may_synchronise`): not inside torch.compile or torch.func, nor off the CPU.
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
    global _built
    if os.environ.get("SVAE_NATIVE", "1") == "0":
        return None
    try:
        from torch.utils.cpp_extension import load

        _put_ninja_on_path()
        # OpenMP: ATen's parallel_for runs serially in code compiled without it.
        module = load("svae_kernels", [str(Path(__file__).with_name("kernels.cpp"))],
                      extra_cflags=["-O3", "-fopenmp"], extra_ldflags=["-fopenmp"])
        _built = True
        return module
    except Exception as error:  # no compiler or no ninja: the torch code does the same work
        warnings.warn(f"svae: the compiled loops of svae/kernels.cpp are unavailable, running the torch "
                      f"code ({error})", RuntimeWarning, stacklevel=2)
        return None


_disabled = False
_built = False  # set by kernels(): compiled code may use the loops once they were built outside it


@contextmanager
def disabled():
    """Run the torch code alone inside this block, as on other devices (to compare the two)."""
    global _disabled
    previous, _disabled = _disabled, True
    try:
        yield
    finally:
        _disabled = previous


def _available() -> bool:
    """Whether the loops are built. Inside ``torch.compile`` the build (a file-system call) cannot
    be traced: there the loops serve if an earlier eager call built them, else the torch code does."""
    if torch.compiler.is_compiling():
        return _built
    return kernels() is not None


def usable(*tensors: torch.Tensor) -> bool:
    """Whether the loops can take these tensors: all on the CPU, of one dtype, float32 or float64,
    and the loops built and not disabled."""
    dtype = tensors[0].dtype
    return (
        not _disabled
        and dtype in (torch.float32, torch.float64)
        and all(t.device.type == "cpu" and t.dtype == dtype for t in tensors)
        and _available()
    )


def rows(shape: torch.Size, vectors=(), scalars=()):
    """The inputs of a loop over samples of ``shape`` = batch + (m,), whose layout is contiguous
    rows of m numbers: each of ``vectors`` broadcast to ``shape`` and each of ``scalars`` to
    ``shape[:-1]``, contiguous."""
    def flat(t, target):  # each view is a dispatched operation: skip them when none is needed
        return t if t.shape == target and t.is_contiguous() else t.expand(target).contiguous()

    return [flat(t, shape) for t in vectors], [flat(t, shape[:-1]) for t in scalars]


# --- the loops as torch.library operators ----------------------------------------------------------
# Eager code calls the extension directly (the operator's dispatch would cost a few microseconds a
# call at training-step sizes). torch.compile cannot trace into the extension, and torch.func
# transforms hand it wrapped tensors it cannot read, so there the same loops are called as
# operators ``torch.ops.svae.*``: opaque to the compiler through their fake (shape-only) kernels,
# and batched under vmap by a rule that lays the vmapped dimension out as more rows.


def transformed() -> bool:
    """Whether code runs inside torch.compile or a torch.func transform (vmap, grad, ...)."""
    return torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active()


def may_synchronise(*values) -> bool:
    """Whether code may read values from these tensors: eager code with every tensor on the CPU,
    where a read costs nothing. Elsewhere it would wait for the device (and stop a CUDA graph's
    capture), break a compiled graph, or fail under vmap."""
    return not transformed() and all(t.device.type == "cpu" for t in values if isinstance(t, torch.Tensor))


def cached(maxsize=None):
    """``functools.lru_cache`` in eager code. Under torch.compile the function is called as it is
    (Dynamo would trace through the cache anyway, with a warning): its tensors become constants of
    the graph."""
    def decorate(function):
        memo = lru_cache(maxsize=maxsize)(function)

        def cached_call(*args):
            return function(*args) if torch.compiler.is_compiling() else memo(*args)

        return cached_call

    return decorate


def call(name: str, *args):
    """The loop ``name`` of ``kernels.cpp`` on ``args``, directly or as the operator ``svae::name``."""
    if transformed():
        return getattr(torch.ops.svae, name)(*args)
    return getattr(kernels(), name)(*args)


def _operator(name: str, schema: str, fake, rows_of: tuple[int, ...]):
    """Register the loop ``name`` as ``svae::name``: ``fake`` gives its outputs' shapes, and the
    arguments at positions ``rows_of`` hold the per-sample data that a vmapped dimension adds rows to
    (the others, such as the Debye coefficients, are shared)."""
    library.define(f"{name}{schema}")

    def loop(*args):
        out = getattr(kernels(), name)(*args)
        if isinstance(out, (list, tuple)):  # an output the loop skipped (undefined) comes back empty
            return tuple(args[0].new_empty(0) if o is None else o for o in out)
        return out

    def batched(info, in_dims, *args):
        def as_rows(arg, dim):
            moved = arg.movedim(dim, 0) if dim is not None else arg.expand(info.batch_size, *arg.shape)
            return moved.contiguous()

        args = [as_rows(a, d) if i in rows_of and a is not None else a for i, (a, d) in enumerate(zip(args, in_dims))]
        out = getattr(torch.ops.svae, name)(*args)
        return out, (tuple(0 for _ in out) if isinstance(out, tuple) else 0)

    library.impl(name, loop, "CPU")
    torch.library.register_fake(f"svae::{name}", fake, lib=library)
    torch.library.register_vmap(f"svae::{name}", batched, lib=library)


library = torch.library.Library("svae", "DEF")


def _like(*positions):
    """A fake kernel returning empty tensors shaped like the arguments at ``positions``."""
    return lambda *args: tuple(torch.empty_like(args[i]) for i in positions) if len(positions) > 1 \
        else torch.empty_like(args[positions[0]])


_operator("first_accepted", "(Tensor kappa, Tensor gamma, Tensor normal, Tensor exponential, int m) "
          "-> (Tensor, Tensor, Tensor)",
          lambda kappa, *_: (torch.empty_like(kappa), torch.empty_like(kappa), torch.empty_like(kappa, dtype=torch.bool)),
          rows_of=(0, 1, 2, 3))
_operator("rotate_from_pole", "(Tensor loc, Tensor one_minus_w, Tensor one_plus_w, Tensor v) -> Tensor",
          _like(3), rows_of=(0, 1, 2, 3))
_operator("rotate_from_pole_backward", "(Tensor grad_z, Tensor loc, Tensor one_minus_w, Tensor one_plus_w, "
          "Tensor v) -> (Tensor, Tensor, Tensor)", _like(1, 2, 3), rows_of=(0, 1, 2, 3, 4))
_operator("wood_sample", "(Tensor loc, Tensor kappa, Tensor p, Tensor q, Tensor v) -> Tensor",
          _like(4), rows_of=(0, 1, 2, 3, 4))
_operator("wood_sample_backward", "(Tensor grad_z, Tensor loc, Tensor kappa, Tensor p, Tensor q, Tensor v) "
          "-> (Tensor, Tensor)", _like(1, 2), rows_of=(0, 1, 2, 3, 4, 5))
_operator("bessel_terms", "(Tensor x, Tensor? v_tensor, float v_scalar, float r0, Tensor coef, int series_terms, "
          "bool with_log_ive) -> (Tensor, Tensor, Tensor, Tensor)",
          lambda x, v, vs, r0, coef, terms, with_log_ive: (
              torch.empty_like(x) if with_log_ive else x.new_empty(0), *(torch.empty_like(x) for _ in range(3))),
          rows_of=(0, 1))
_operator("bessel_backward", "(Tensor x, Tensor? v_tensor, float v_scalar, Tensor ratio, Tensor complement, "
          "Tensor? g_log_ive, Tensor? g_log_over_power, Tensor? g_ratio, Tensor? g_complement) -> Tensor",
          _like(0), rows_of=(0, 1, 3, 4, 5, 6, 7, 8))


def compiled(name: str, reference):
    """The loop ``name`` as a differentiable function of its tensor inputs, with
    ``name + "_backward"`` (grad_output, *inputs) -> gradients of the leading inputs as backward.

    ``reference`` is the torch code the loop follows: a double backward (``create_graph=True``)
    differentiates it, so the loop supports everything the torch code does.
    """

    class Compiled(torch.autograd.Function):
        generate_vmap_rule = True  # the operators batch themselves

        @staticmethod
        def forward(*inputs):
            return call(name, *inputs)

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(*inputs)

        @staticmethod
        def backward(ctx, grad_output):
            inputs = ctx.saved_tensors
            # A double backward differentiates the reference; compiled graphs and torch.func
            # transforms take the backward loop (as an operator: batched under vmap).
            if torch.is_grad_enabled() and not transformed():
                wanted = [t for t in inputs if t.requires_grad]
                grads = iter(torch.autograd.grad(reference(*inputs), wanted, grad_output, create_graph=True))
                return tuple(next(grads) if t.requires_grad else None for t in inputs)
            grads = call(name + "_backward", grad_output.contiguous(), *inputs)
            return *grads, *(None,) * (len(inputs) - len(grads))

    Compiled.__name__ = Compiled.__qualname__ = f"Compiled_{name}"
    return applier(Compiled)


def applier(function: type[torch.autograd.Function]):
    """``function.apply``, minus torch's per-call binding of the arguments to ``forward``'s
    signature (``inspect.signature``: about 45 us a call, where the loops take 10) in eager code;
    inside torch.compile and torch.func transforms, ``function.apply`` itself, which they need."""
    eager = super(torch.autograd.Function, function).apply  # the C++ apply, which setup_context suits too

    def apply(*args):
        return function.apply(*args) if transformed() else eager(*args)

    return apply
