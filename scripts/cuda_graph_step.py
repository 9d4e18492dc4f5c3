"""On a CUDA device: no host synchronisation in rsample + backward, and one S-VAE training step
captured in a CUDA graph and replayed.

    python scripts/cuda_graph_step.py [--json PATH]

1. ``torch.cuda.set_sync_debug_mode("error")`` around ``rsample`` and its backward for the
   von Mises-Fisher, the Power Spherical and the uniform distribution (a synchronising call
   raises), and around the KLs and densities an S-VAE step uses.
2. One S-VAE step (encoder, vMF sample, KL, decoder, backward, Adam with ``capturable=True``)
   captured in a CUDA graph after warm-up on a side stream, then replayed on new batches, whose
   losses must be finite (a capture fails outright on a synchronising call or a host-to-device
   copy). Timed: eager step, compiled step, graph replay (milliseconds, median of ``--repeats``).

Exits non-zero if a check fails; the record says which.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from torch.distributions import kl_divergence

from svae.distributions import HypersphericalUniform, PowerSpherical, VonMisesFisher
from svae.nn.latent import latent_family
from svae.nn.objectives import elbo_terms
from svae.nn.vae import VAE
from svae.records import write_record


def sync_free(device) -> dict:
    """Each distribution's rsample + backward under the sync debug mode "error"."""
    results = {}
    for family in (VonMisesFisher, PowerSpherical):
        loc = torch.randn(4096, 11, device=device, requires_grad=True)
        kappa = (torch.rand(4096, device=device) * 100).requires_grad_()
        uniform = HypersphericalUniform(11, device=device, validate_args=False)
        torch.cuda.synchronize()
        try:
            torch.cuda.set_sync_debug_mode("error")
            q = family(torch.nn.functional.normalize(loc, dim=-1), kappa, validate_args=False)
            z = q.rsample()
            loss = z.sum() + q.log_prob(z).sum() + kl_divergence(q, uniform).sum() + uniform.rsample((8,)).sum()
            if family is VonMisesFisher:
                loss = loss + q.rejection_log_weight(z).sum()
            loss.backward()
            results[family.__name__] = "no synchronisation"
        except RuntimeError as error:
            results[family.__name__] = f"FAILED: {error}"
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return results


def graph_step(device, repeats: int) -> dict:
    torch.manual_seed(0)
    model = VAE.mlp(784, (256, 128), latent_family("vmf", 10), "bernoulli").to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, capturable=True)
    static_x = torch.rand(128, 784, device=device).bernoulli()

    def step():
        optimizer.zero_grad(set_to_none=False)
        loss = elbo_terms(model, static_x)["loss"]
        loss.backward()
        optimizer.step()
        return loss

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up: the optimizer's state and the caching allocator
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_loss = step()
    losses = []
    for _ in range(5):
        static_x.copy_(torch.rand(128, 784, device=device).bernoulli())
        graph.replay()
        losses.append(static_loss.item())
    finite = all(torch.isfinite(torch.tensor(losses)).tolist())

    def timed(function) -> float:
        times = []
        for _ in range(repeats):
            torch.cuda.synchronize()
            start = time.perf_counter()
            function()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        return 1e3 * statistics.median(times)

    compiled_loss = torch.compile(lambda x: elbo_terms(model, x)["loss"], fullgraph=True)

    def compiled_step():
        optimizer.zero_grad(set_to_none=False)
        compiled_loss(static_x).backward()
        optimizer.step()

    for _ in range(3):
        compiled_step()
    return {"graph_losses": losses, "graph_losses_finite": finite, "eager_step_ms": timed(step),
            "compiled_step_ms": timed(compiled_step), "graph_replay_ms": timed(graph.replay)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        parser.error("needs a CUDA device")
    torch.distributions.Distribution.set_default_validate_args(False)
    device = torch.device("cuda")
    start = time.time()
    metrics = {"sync_free": sync_free(device), **graph_step(device, args.repeats)}
    ok = all(v == "no synchronisation" for v in metrics["sync_free"].values()) and metrics["graph_losses_finite"]
    metrics["all_checks_passed"] = ok
    print(metrics)
    if args.json:
        write_record(args.json, command="scripts/cuda_graph_step.py", config=vars(args), metrics=metrics,
                     wall_time=time.time() - start, device=torch.cuda.get_device_name())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
