"""Link-prediction training speed and peak memory, side by side in one run.

    python benchmarks/linkpred.py [--epochs 200] [--datasets cora pubmed] [--losses dense negative]
                                  [--device cpu|cuda] [--json PATH]

One full training run (``--epochs`` full-batch Adam steps, then the test AUC) per case, each in
a fresh process so that its peak resident memory is its own: our N-VGAE and S-VGAE with Kipf's
dense loss and with negative sampling, and torch_geometric's own ``VGAE`` with the same
two-layer GCN encoder (32 hidden, 16 latent) and its negative-sampling ``recon_loss``, trained as
in PyG's example (propagating over the edge list; ours over a sparse CSR adjacency, see
``svae.nn.graph.message_passing_graph``). Targets (issue 2): S-VGAE with negative sampling within 1.3x of PyG's VGAE,
peak memory under 4 GiB, the dense loss on PubMed under 3 minutes. ``--device cuda`` trains on a
GPU (the peak memory is then the host's; the times wait for the device).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

CASES = [("ours", "normal", "dense"), ("ours", "vmf", "dense"), ("ours", "normal", "negative"),
         ("ours", "vmf", "negative"), ("pyg", "normal", "negative")]


def run_case(system: str, latent: str, loss: str, dataset: str, epochs: int, device: str = "cpu") -> dict:
    import torch

    torch.distributions.Distribution.set_default_validate_args(False)
    torch.manual_seed(0)
    from svae.experiments.linkpred import LinkPredConfig, build_model, evaluate, prepare, training_loss

    config = LinkPredConfig(dataset=dataset, latent=latent, loss=loss, epochs=epochs, device=device)
    data = prepare(config)
    if system == "ours":
        model = build_model(config, data.x.shape[1]).to(device)
        step = lambda: training_loss(model, data, config)[0]  # noqa: E731
        test = lambda: evaluate(model, data, "test")[0]  # noqa: E731
    else:
        from torch_geometric.nn import GCNConv, VGAE

        class Encoder(torch.nn.Module):  # the same GCN: shared first layer, mu and log-std heads
            def __init__(self, channels, hidden, latent_dim):
                super().__init__()
                self.conv1 = GCNConv(channels, hidden, cached=True)
                self.conv_mu = GCNConv(hidden, latent_dim, cached=True)
                self.conv_logstd = GCNConv(hidden, latent_dim, cached=True)

            def forward(self, x, edge_index):
                h = self.conv1(x, edge_index).relu()
                return self.conv_mu(h, edge_index), self.conv_logstd(h, edge_index)

        model = VGAE(Encoder(data.x.shape[1], config.hidden, config.latent_dim)).to(device)
        train_pos, train_edge_index = data.split.train_pos.to(device), data.split.train_edge_index.to(device)

        def step():
            z = model.encode(data.x, train_edge_index)
            return model.recon_loss(z, train_pos) + model.kl_loss() / data.split.num_nodes

        def test():
            from svae.metrics import roc_auc

            model.eval()
            with torch.no_grad():
                z = model.encode(data.x, train_edge_index)
                pos = model.decoder(z, data.split.test_pos.to(device), sigmoid=False)
                neg = model.decoder(z, data.split.test_neg.to(device), sigmoid=False)
            return roc_auc(pos, neg)

    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    start = time.perf_counter()
    model.train()
    for _ in range(epochs):
        optimizer.zero_grad()
        step().backward()
        optimizer.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    auc = test()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes -> MiB on Linux
    return {"seconds": seconds, "test_auc": auc, "peak_mib": peak}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--datasets", nargs="+", default=["cora", "pubmed"])
    parser.add_argument("--losses", nargs="+", choices=["dense", "negative"], default=["dense", "negative"],
                        help="our models' losses to time (PyG's VGAE always runs: the ratio's reference)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--json", default=None)
    parser.add_argument("--case", nargs=4, help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = parser.parse_args(argv)
    if args.case:
        system, latent, loss, dataset = args.case
        print(json.dumps(run_case(system, latent, loss, dataset, args.epochs, args.device)))
        return
    start = time.time()
    rows, metrics = [], {}
    print(f"{args.epochs} epochs, full-batch; seconds of training, test AUC, peak resident memory")
    print(f"{'dataset':<8} {'model':<12} {'loss':<9} {'seconds':>9} {'AUC':>7} {'peak MiB':>9}")
    for dataset in args.datasets:
        for system, latent, loss in [case for case in CASES if case[0] == "pyg" or case[2] in args.losses]:
            out = subprocess.run([sys.executable, __file__, "--epochs", str(args.epochs), "--device", args.device,
                                  "--case", system, latent, loss, dataset], capture_output=True, text=True, check=True, env=os.environ)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            name = {"normal": "N-VGAE", "vmf": "S-VGAE"}[latent] if system == "ours" else "PyG VGAE"
            print(f"{dataset:<8} {name:<12} {loss:<9} {result['seconds']:>9.1f} {result['test_auc']:>7.3f} "
                  f"{result['peak_mib']:>9.0f}", flush=True)
            key = f"{dataset}_{system}_{latent}_{loss}"
            metrics.update({f"{key}_seconds": result["seconds"], f"{key}_peak_mib": result["peak_mib"]})
            rows.append({"dataset": dataset, "system": system, "latent": latent, "loss": loss, **result})
        if "negative" in args.losses:
            ratio = metrics[f"{dataset}_ours_vmf_negative_seconds"] / metrics[f"{dataset}_pyg_normal_negative_seconds"]
            metrics[f"{dataset}_svgae_over_pyg"] = ratio
            print(f"{dataset}: S-VGAE (negative sampling) / PyG VGAE = {ratio:.2f}x (target <= 1.3x)")
    if args.json:
        from svae.records import write_record

        write_record(args.json, command="benchmarks/linkpred.py", config=vars(args), metrics=metrics,
                     wall_time=time.time() - start, rows=rows)


if __name__ == "__main__":
    main()
