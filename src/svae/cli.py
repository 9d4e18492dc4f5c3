"""The ``svae`` command line: one subcommand per experiment, shared conventions for all.

Every command that produces results accepts ``--json PATH`` (one JSON record, figures under
``metrics``) and every command that reads data accepts ``--data-dir`` (else ``SVAE_DATA_DIR``,
else a per-user cache).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

import svae
from svae import native
from svae.atomic import ensure_writable_folder
from svae.nn.latent import FAMILIES
from svae.data.store import default_cache_dir, resolve_data_dir
from svae.records import code_version, provenance


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=None,
                        help="data directory (default: $SVAE_DATA_DIR, else ~/.cache/svae)")


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", default=None, metavar="PATH", help="write one JSON record of the run here")


def _info(args) -> int:
    info = provenance()
    data_dir = resolve_data_dir(args.data_dir)
    info["data_dir"] = str(data_dir)
    info["data_dir_exists"] = data_dir.is_dir()  # missing files are downloaded into the cache
    info["cache_dir"] = str(default_cache_dir())
    info["devices"] = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    info["compiled_cpu_loops"] = native.kernels() is not None  # built here on first use
    print(json.dumps(info, indent=2))
    return 0


def _linkpred(args) -> int:
    from dataclasses import asdict

    from svae.experiments.linkpred import LinkPredConfig, run, tuned_config
    from svae.records import write_record

    torch.distributions.Distribution.set_default_validate_args(False)
    overrides = {k: getattr(args, k) for k in LINKPRED_FLAGS if getattr(args, k) is not None}
    try:
        if args.tuned:
            config = tuned_config(args.dataset, args.latent, args.seed, **overrides)
        else:
            config = LinkPredConfig(dataset=args.dataset, latent=args.latent, seed=args.seed, **overrides)
    except ValueError as error:
        args.parser.error(str(error))
    record = run(config, data_dir=args.data_dir, cache_dir=args.cache_dir)
    m = record["metrics"]
    print(f"{config.dataset} {config.latent} seed {config.seed}: test AUC {m['test_auc']:.4f}, "
          f"test AP {m['test_ap']:.4f} (epoch {m['best_epoch']}, validation AUC {m['val_auc']:.4f}, "
          f"{record['wall_time']:.1f} s)")
    if args.json:
        path = write_record(args.json, command="svae linkpred", config=asdict(config), metrics=m,
                            wall_time=record["wall_time"], curve=record["curve"], test_scores=record["test_scores"])
        print(f"record written to {path}")
    return 0


LINKPRED_FLAGS = ("epochs", "lr", "hidden", "latent_dim", "spheres", "dropout", "loss", "correction", "scale",
                  "learn_scale", "device")


# Where `svae reproduce` keeps its records by default: the committed ones, which it trains again
# (and says so) unless --reuse.
_REPRODUCE_OUT = {"linkpred": "results/linkpred", "mnist": "results/mnist/{profile}", "m1m2": "results/m1m2",
                  "highdim": "results/highdim/{profile}"}


def _reproduce(args) -> int:
    import importlib

    torch.distributions.Distribution.set_default_validate_args(False)
    if args.seeds is not None and args.seeds < 1 or args.jobs < 1:
        args.parser.error("--seeds and --jobs must be >= 1")
    if args.dims is not None and (args.experiment not in ("mnist", "highdim") or min(args.dims) < 1):
        args.parser.error("--dims takes latent dimensions >= 1 and applies to reproduce mnist and highdim only")
    if args.latents is not None and args.experiment not in ("mnist", "highdim"):
        args.parser.error("--latents applies to reproduce mnist and highdim only")
    if args.sphere_dof is not None and (args.experiment not in ("highdim", "linkpred") or min(args.sphere_dof) < 1):
        args.parser.error("--sphere-dof takes degrees of freedom >= 1 per sphere and applies to reproduce highdim and "
                          "linkpred only")
    if args.profile is not None and args.experiment == "linkpred":
        args.parser.error("--profile applies to reproduce mnist, m1m2 and highdim (linkpred's budget is its tuned epochs)")
    args.profile = args.profile or "fast"
    options = {"jobs": args.jobs, "table": args.table, "data_dir": args.data_dir, "cache_dir": args.cache_dir,
               "train": not args.table_only, "reuse": args.reuse,
               "out_dir": args.out or _REPRODUCE_OUT[args.experiment].format(profile=args.profile)}
    if args.experiment == "linkpred":
        options.update(seeds=args.seeds or 10, table=args.table or "results/linkpred.md",
                       **({"sphere_dof": tuple(args.sphere_dof)} if args.sphere_dof else {}))
    else:  # mnist, m1m2 and highdim name their default directories after the profile
        options.update(profile=args.profile, seeds=args.seeds or (2 if args.experiment == "highdim" else 1),
                       **({"sphere_dof": tuple(args.sphere_dof)} if args.sphere_dof else {}),
                       **({"dims": tuple(args.dims)} if args.dims else {}),
                       **({"latents": tuple(args.latents)} if args.latents else {}))
    args.out_dir = options["out_dir"] + (f"/{args.profile}" if args.experiment == "m1m2" else "")  # the records'
    problem = None if args.table_only else output_dir_problem(args.out_dir)
    if problem:  # the default folder too, before any run trains
        args.parser.error(f"--out {args.out_dir!r}: {problem}")
    reproduce = importlib.import_module(f"svae.experiments.{args.experiment}").reproduce
    try:
        table = reproduce(**options)
    except FileNotFoundError as error:
        if not args.table_only:
            raise
        args.parser.error(f"--table-only: {error}")
    print(table)
    return 0


def _m1m2(args) -> int:
    from svae.experiments.m1m2 import PROFILES, M1M2Config, run
    from svae.records import write_record

    torch.distributions.Distribution.set_default_validate_args(False)
    overrides = {k: getattr(args, k) for k in ("alpha", "labelled_weight", "m2_select", "m2_epochs",
                                                  "m2_warmup_epochs", "m2_data", "m2_correction", "m1_codes",
                                                  "device")
                 if getattr(args, k) is not None}
    try:
        config = M1M2Config(m1=args.m1, m2=args.m2, z1=args.z1, z2=args.z2, spheres=args.spheres or 1,
                            labels=args.labels, seed=args.seed,
                            profile=args.profile, **{**PROFILES[args.profile], **overrides})
    except ValueError as error:
        args.parser.error(str(error))
    try:
        record = run(config, m1_dir=args.m1_dir, data_dir=args.data_dir, cache_dir=args.cache_dir)
    except ValueError as error:  # e.g. more labels than the training set holds
        args.parser.error(str(error))
    spheres = f" on {config.spheres} spheres" if config.spheres > 1 else ""
    print(f"M1 {config.m1} z1={config.z1}{spheres} + M2 {config.m2} z2={config.z2}, {config.labels} labels, seed "
          f"{config.seed}: test accuracy {100 * record['metrics']['test_accuracy']:.2f} % ({record['wall_time']:.0f} s)")
    if args.json:
        path = write_record(args.json, command="svae m1m2", config=record["config"], metrics=record["metrics"],
                            wall_time=record["wall_time"], history=record["history"])
        print(f"record written to {path}")
    return 0


def _mnist(args) -> int:
    from dataclasses import asdict

    from svae.experiments.mnist import PROFILES, MnistConfig, describe_budget, run
    from svae.records import write_record

    torch.distributions.Distribution.set_default_validate_args(False)
    overrides = {k: getattr(args, k) for k in ("spheres", "epochs", "batch_size", "lr", "warmup_epochs", "patience",
                                                "hidden", "ll_samples", "correction", "device", "micro_batches")
                 if getattr(args, k) is not None}
    if args.patience is not None and args.patience < 0:
        args.parser.error(f"--patience must be >= 0 (0 turns early stopping off), got {args.patience}")
    if args.patience == 0:  # the profile's early stopping turned off: train for all --epochs
        overrides["patience"] = None
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:  # launched by torchrun: one process per device or CPU share
        import torch.distributed as dist

        on_gpu = torch.device(args.device).type == "cuda"
        if on_gpu:  # one GPU per process, numbered by torchrun's LOCAL_RANK
            local_rank = int(os.environ["LOCAL_RANK"])
            if local_rank >= torch.cuda.device_count():
                args.parser.error(f"--device {args.device} under torchrun takes one GPU per process, and process "
                                  f"{local_rank} has none ({torch.cuda.device_count()} on this machine); start "
                                  f"fewer processes or pass --device cpu")
            torch.cuda.set_device(local_rank)
            overrides["device"] = f"cuda:{local_rank}"
        dist.init_process_group("nccl" if on_gpu else "gloo")
        overrides.setdefault("micro_batches", world)
    try:
        config = MnistConfig(latent=args.latent, dim=args.dim, seed=args.seed, **{**PROFILES[args.profile], **overrides})
    except ValueError as error:
        args.parser.error(str(error))
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"svae mnist: {describe_budget(config, args.profile)}", file=sys.stderr, flush=True)
    record = run(config, data_dir=args.data_dir, cache_dir=args.cache_dir, checkpoint=args.checkpoint,
                 model_path=args.model)
    if record is None:  # a data-parallel worker other than rank 0: rank 0 evaluates and reports
        return 0
    m = record["metrics"]
    print(f"{config.latent} d={config.dim} seed {config.seed}: LL {m['test_ll']:.2f}, ELBO {m['test_elbo']:.2f}, "
          f"RE {m['test_re']:.2f}, KL {m['test_kl']:.2f} nats; k-NN "
          + ", ".join(f"{n} labels {100 * m[f'knn_acc_{n}']:.1f} %" for n in config.knn_labels)
          + f" (best epoch {m['best_epoch']}, {record['wall_time']:.0f} s)")
    if args.json:
        path = write_record(args.json, command="svae mnist", config=asdict(config), metrics=m,
                            wall_time=record["wall_time"], history=record["history"],
                            **{k: record[k] for k in ("codes", "labels") if k in record})
        print(f"record written to {path}")
    return 0


def _demo(args) -> int:
    from svae.experiments.circle import CircleConfig, demo

    torch.distributions.Distribution.set_default_validate_args(False)
    options = {"epochs": args.epochs} if args.epochs is not None else {}  # --epochs 0 is an error, not unset
    if args.quick:  # a reduced run (the test suite's): fewer points, fewer epochs
        options = {"n_train": 600, "n_val": 200, "n_test": 300, "epochs": 3, "ll_samples": 20, **options}
    try:
        config = CircleConfig(seed=args.seed, **options)
    except ValueError as error:
        args.parser.error(str(error))
    demo(config, args.out, json_path=args.json)
    return 0


def _plot(args) -> int:
    from pathlib import Path

    from svae import plots
    from svae.experiments.circle import component_names
    from svae.records import RecordError, read_record

    if args.from_epoch is not None and (args.kind != "curves" or args.from_epoch < 1):
        args.parser.error(f"--from-epoch takes an epoch >= 1 and applies to plot curves only, got {args.from_epoch} "
                          f"for plot {args.kind}")
    if args.out and len(args.records) > 1 and args.kind != "roc":
        args.parser.error(f"--out with several records applies to plot roc only (one figure of all their curves); "
                          f"plot {args.kind} writes one figure per record, next to it")
    figures, roc = [], {}
    for source in args.records:
        try:
            record = read_record(source)
        except RecordError as error:
            args.parser.error(str(error))
        out = Path(args.out) if args.out else Path(source).with_suffix(f".{args.kind}.{args.format}")
        try:
            if args.kind == "curves":
                figures.append(plots.learning_curves(record, out, from_epoch=args.from_epoch or 1))
            elif args.kind == "latent":
                if "codes" not in record or "labels" not in record:
                    raise ValueError(_no_codes(record))
                codes = record["codes"]
                # the demo's labels are its mixture components, MNIST's the digits
                names = (component_names(record["labels"]) if record.get("command") == "svae demo"
                         else {v: f"digit {v}" for v in set(record["labels"])})
                if isinstance(codes, dict):  # several models: one panel each
                    figures.append(plots.latent_spaces(codes, record["labels"], out, label_names=names))
                else:
                    figures.append(plots.sphere_latents(codes, record["labels"], out, label_names=names))
            else:
                scores = record.get("test_scores")
                if not scores:
                    raise ValueError("the record has no 'test_scores' (written by svae linkpred)")
                curve = {"{dataset} {latent} seed {seed}".format(**record["config"]): (scores["pos"], scores["neg"])}
                if args.out:  # one figure for all the records
                    roc.update(curve)
                else:
                    figures.append(plots.roc_curves(curve, out))
        except ValueError as error:
            args.parser.error(f"{source}: {error}")
    if roc:
        figures.append(plots.roc_curves(roc, args.out))
    for figure in figures:
        print(f"figure written to {figure}")
    return 0


def _no_codes(record: dict) -> str:
    """Why a record has no latent codes to plot, and which runs keep them."""
    rule = ("svae demo keeps them always; svae mnist only when a code has at most 3 coordinates (d <= 2 for "
            "vmf and power, d <= 3 for normal)")
    config = record.get("config", {})
    if record.get("command", "").endswith("mnist") and "dim" in config:
        return f"the record has no latent codes: its run has d = {config['dim']}, and {rule}"
    return f"the record has no latent codes and labels; {rule}"


def add_cache_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", default=None,
                        help="writable cache (default: $SVAE_CACHE_DIR, else ~/.cache/svae)")


def seed_argument(value: str) -> int:
    """``--seed``: an integer in [0, 2^63 - 1], the range torch's generators take."""
    try:
        seed = int(value)
    except ValueError:
        seed = None
    if seed is None or not 0 <= seed < 2**63:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to 2^63 - 1, got {value!r}")
    return seed


def device_argument(value: str) -> str:
    """``--device``: cpu, or a CUDA device this machine has (cuda, cuda:N).

    Not mps: training and evaluation accumulate in float64, which Apple's GPUs lack."""
    try:
        device = torch.device(value)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {value!r}")
    if device.type == "cuda" and not (device.index or 0) < torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{value!r} is not available on this machine (torch {torch.__version__} "
                                         f"sees {torch.cuda.device_count()} CUDA device(s))")
    return value


def add_experiment_options(parser: argparse.ArgumentParser, run) -> None:
    """The options every training command shares: device, data, cache, JSON record."""
    parser.add_argument("--device", type=device_argument, default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")
    add_data_dir(parser)
    add_cache_dir(parser)
    add_json(parser)
    parser.set_defaults(run=run, parser=parser)


SPHERES_HELP = ("vmf, power and cauchy: split the d degrees of freedom over K spheres, each with its own mean direction and "
                "concentration (d // K each, the first d mod K one more; default 1, a single sphere)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="svae", description="Hyperspherical latent-variable models.")
    parser.add_argument("--version", action="version", version=f"svae {svae.__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of errors caused by input too (data, checkpoints, Ctrl-C)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = commands.add_parser("info", help="versions, devices, the data directory in use and whether the compiled CPU loops build")
    add_data_dir(info)
    info.set_defaults(run=_info)

    dm = commands.add_parser("demo", help="the synthetic circle experiment: five latent spaces compared (Figure 1)")
    dm.add_argument("--out", default="demo", help="directory for latent_spaces.png and demo.json (default demo/)")
    dm.add_argument("--epochs", type=int, help="training epochs per model (default 60)")
    dm.add_argument("--seed", type=seed_argument, default=0)
    dm.add_argument("--quick", action="store_true", help="a reduced run of a few seconds")
    add_json(dm)
    dm.set_defaults(run=_demo, parser=dm, output_dirs=("out",))

    lp = commands.add_parser("linkpred", help="link prediction with a variational graph auto-encoder (Table 4)")
    lp.add_argument("--dataset", required=True, type=str.lower, choices=["cora", "citeseer", "pubmed"],
                    help="cora, citeseer or pubmed (any case: the data folders are spelled Cora, CiteSeer, PubMed)")
    lp.add_argument("--latent", required=True, choices=FAMILIES)
    lp.add_argument("--seed", type=seed_argument, default=0, help="split and initialisation seed")
    lp.add_argument("--tuned", action="store_true", help="start from the committed tuned hyper-parameters")
    lp.add_argument("--epochs", type=int, help="training epochs (default 200)")
    lp.add_argument("--lr", type=float, help="Adam learning rate (default 0.01)")
    lp.add_argument("--hidden", type=int, help="hidden GCN channels (default 32)")
    lp.add_argument("--latent-dim", dest="latent_dim", type=int, help="latent degrees of freedom (default 16)")
    lp.add_argument("--spheres", type=int, help=SPHERES_HELP)
    lp.add_argument("--dropout", type=float, help="dropout on each GCN input (default 0)")
    lp.add_argument("--loss", choices=["dense", "negative"], help="Kipf's dense loss or negative sampling")
    lp.add_argument("--correction", action=argparse.BooleanOptionalAction, default=None,
                    help="add the rejection-sampling gradient correction (vmf only; default off)")
    lp.add_argument("--scale", type=float, help="decoder scale on z_i^T z_j (default 1)")
    lp.add_argument("--learn-scale", dest="learn_scale", action=argparse.BooleanOptionalAction, default=None,
                    help="learn the decoder scale")
    add_experiment_options(lp, _linkpred)

    pl = commands.add_parser("plot", help="figures from JSON records: learning curves, latent spaces, ROC curves")
    pl.add_argument("kind", choices=["curves", "latent", "roc"])
    pl.add_argument("records", nargs="+", help="JSON records written with --json or by reproduce/demo")
    pl.add_argument("--out", help="figure path (default: one figure next to each record); plot roc with several "
                                  "records draws all their curves in this one figure")
    pl.add_argument("--format", choices=["png", "svg"], default="png")
    pl.add_argument("--from-epoch", dest="from_epoch", type=int,
                    help="curves: start at this epoch (default 1; the first epochs are often off the scale of the rest)")
    pl.set_defaults(run=_plot, parser=pl, output_files=("out",))

    mn = commands.add_parser("mnist", help="an N-/S-/PS-VAE on dynamically binarised MNIST (Tables 1 and 2)")
    mn.add_argument("--latent", required=True, choices=FAMILIES)
    mn.add_argument("--dim", type=int, required=True, help="latent degrees of freedom d (the sphere S^d is in R^(d+1))")
    mn.add_argument("--spheres", type=int, help=SPHERES_HELP)
    mn.add_argument("--seed", type=seed_argument, default=0)
    mn.add_argument("--profile", choices=["paper", "fast", "smoke"], default="fast",
                    help="run budget the flags below override: fast (default, as reproduce and m1m2), paper "
                         "(the paper's protocol: up to 1000 epochs, hours on a CPU) or smoke (seconds)")
    mn.add_argument("--epochs", type=int)
    mn.add_argument("--batch-size", dest="batch_size", type=int)
    mn.add_argument("--lr", type=float)
    mn.add_argument("--warmup-epochs", dest="warmup_epochs", type=int)
    mn.add_argument("--patience", type=int,
                    help="epochs without a better validation ELBO before stopping (the profile's; 0: never stop early)")
    mn.add_argument("--hidden", type=int, nargs="+", metavar="WIDTH",
                    help="the encoder's hidden widths, mirrored by the decoder (default: the paper's 256 128)")
    mn.add_argument("--ll-samples", dest="ll_samples", type=int, help="importance samples per test image (500)")
    mn.add_argument("--correction", action=argparse.BooleanOptionalAction, default=None,
                    help="rejection-sampling gradient correction for the vMF (default off)")
    mn.add_argument("--micro-batches", dest="micro_batches", type=int,
                    help="micro-batches per step (gradient accumulation; default 1, or the torchrun world size)")
    mn.add_argument("--checkpoint", help="checkpoint file: written every epoch, resumed from if present")
    mn.add_argument("--model", help="file to keep the trained weights in (with their configuration), for the "
                                    "scripts that study one model; a grid's layout is <out>/models/<run>.pt")
    add_experiment_options(mn, _mnist)

    mm = commands.add_parser("m1m2", help="semi-supervised MNIST: M1+M2 with spherical / Gaussian latents (Table 3)")
    mm.add_argument("--m1", required=True, choices=["normal", "vmf"], help="M1's latent family")
    mm.add_argument("--m2", required=True, choices=["normal", "vmf"], help="M2's latent family (z2)")
    mm.add_argument("--z1", type=int, required=True, help="M1's latent degrees of freedom")
    mm.add_argument("--z2", type=int, required=True, help="M2's latent degrees of freedom")
    mm.add_argument("--spheres", type=int, help="split M1's z1 over this many spheres (svae.nn.product; default 1)")
    mm.add_argument("--labels", type=int, default=100, help="labelled training images, balanced over the classes")
    mm.add_argument("--seed", type=seed_argument, default=0)
    mm.add_argument("--profile", choices=["paper", "fast", "smoke"], default="fast", help="run budget of M1 and M2")
    mm.add_argument("--alpha", type=float, help="weight of the labelled cross-entropy")
    mm.add_argument("--labelled-weight", dest="labelled_weight", type=float,
                    help="weight of the labelled bound's mean next to the unlabelled bound's mean")
    mm.add_argument("--m2-epochs", dest="m2_epochs", type=int, help="M2's maximum epochs (the profile's by default)")
    mm.add_argument("--m2-warmup-epochs", dest="m2_warmup_epochs", type=int,
                    help="epochs over which M2's KL weight grows linearly from 0 to 1 (default 0: none)")
    mm.add_argument("--m2-data", dest="m2_data", choices=["normal", "vmf"],
                    help="M2's likelihood of the codes p(z1|y,z2): Gaussian (default) or vMF")
    mm.add_argument("--m2-correction", dest="m2_correction", action=argparse.BooleanOptionalAction, default=None,
                    help="the rejection-sampling gradient correction for a vMF z2 (unbiased gradients; default on)")
    mm.add_argument("--m1-codes", dest="m1_codes", choices=["mean", "sample"],
                    help="M2's training data: M1's posterior means (default) or a fresh sample of q(z1|x) every step")
    mm.add_argument("--m2-select", dest="m2_select", choices=["elbo", "accuracy"],
                    help="M2's epoch: best validation accuracy (default; uses the 10 000 validation labels) or "
                         "best validation bound U (no labels beyond --labels are used)")
    mm.add_argument("--m1-dir", dest="m1_dir", default="results/mnist",
                    help="the MNIST grid's directory: M1 is its model of the same configuration, "
                         "<dir>/<profile>/models/, reused or trained and kept there")
    add_experiment_options(mm, _m1m2)

    rep = commands.add_parser("reproduce", help="run a paper table's whole grid (resumable) and write it")
    rep.add_argument("experiment", choices=["linkpred", "mnist", "m1m2", "highdim"])
    rep.add_argument("--profile", choices=["paper", "fast", "smoke"], default=None,
                     help="run budget of every MNIST and M1+M2 run (default fast; linkpred has its tuned epochs)")
    rep.add_argument("--seeds", type=int, default=None, help="seeds per cell (linkpred 10, mnist and m1m2 1, highdim 2)")
    rep.add_argument("--jobs", type=int, default=1, help="parallel runs (threads are shared out)")
    rep.add_argument("--dims", type=int, nargs="+",
                     help="mnist and highdim: the latent dimensions to run (default 2 5 10 20 40; highdim 10 20 40 "
                          "64), e.g. the paper profile for d = 10 alone")
    rep.add_argument("--latents", nargs="+", choices=FAMILIES,
                     help="mnist and highdim: the latent families to run (default normal vmf power; highdim all "
                          "four), e.g. the paper's two without the Power Spherical")
    rep.add_argument("--sphere-dof", dest="sphere_dof", type=int, nargs="+",
                     help="highdim: besides one sphere, train each spherical family on d // k spheres for each k "
                          "given (default 5 10: spheres of about 5 and of about 10 degrees of freedom); linkpred: add the S-VGAE on "
                          "latent_dim // k spheres (default none)")
    rep.add_argument("--out", default=None, help="record directory (default results/<experiment>[/<profile>])")
    rep.add_argument("--table", default=None, help="table path (default results/<experiment>.md)")
    add_data_dir(rep)
    add_cache_dir(rep)
    reuse = rep.add_mutually_exclusive_group()
    reuse.add_argument("--reuse", dest="reuse", action="store_const", const="any", default="same-code",
                       help="reuse every record of the same configuration, whatever code version wrote it (by "
                            "default only records written by this code are reused; the committed ones are not)")
    reuse.add_argument("--retrain", dest="reuse", action="store_const", const="none",
                       help="train every run again, reusing no record")
    rep.add_argument("--table-only", action="store_true",
                     help="write the table from the records present (any code version), without training")
    rep.set_defaults(run=_reproduce, parser=rep, output_files=("table",))
    for command in commands.choices.values():  # --debug before or after the command's name
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


# The options that name a file a command writes; a command adds its own (``output_files``,
# ``output_dirs`` in its parser's defaults), as ``--out`` is a folder for some and a file for others.
OUTPUT_FILES = ("json", "checkpoint", "model")


def output_file_problem(path: str) -> str | None:
    """What stops a command from writing the file ``path`` at its end, or None. A missing folder is
    created now (:func:`svae.atomic.ensure_writable_folder`)."""
    if not path:
        return "an empty path: give a file name"
    target = Path(path)
    if target.is_dir():
        return "is a directory: give the path of a file (in it, say)"
    try:
        ensure_writable_folder(target.parent)
    except OSError as error:
        return f"cannot write in its folder {target.parent} ({error.strerror or error}); choose another path"
    return None


def output_dir_problem(path: str) -> str | None:
    """What stops a command from writing files in the folder ``path``, or None. A missing folder
    is created now (:func:`svae.atomic.ensure_writable_folder`)."""
    if not path:
        return "an empty path: give a folder"
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        return "is a file: give the path of a folder"
    try:
        ensure_writable_folder(folder)
    except OSError as error:
        return f"cannot write in it ({error.strerror or error}); choose another folder"
    return None


def check_outputs(args, parser) -> None:
    """Every output path the arguments name, checked before any work starts (a usage error)."""
    for name in (*OUTPUT_FILES, *getattr(args, "output_files", ())):
        value = getattr(args, name, None)
        problem = None if value is None else output_file_problem(value)
        if problem:  # found now, not after hours of training
            parser.error(f"--{name} {value!r}: {problem}")
    for name in getattr(args, "output_dirs", ()):
        value = getattr(args, name, None)
        problem = None if value is None else output_dir_problem(value)
        if problem:
            parser.error(f"--{name} {value!r}: {problem}")
    data_dir = getattr(args, "data_dir", None)  # $SVAE_DATA_DIR may name a folder not made yet; the option may not
    if data_dir is not None and args.run is not _info and not Path(data_dir).is_dir():
        parser.error(f"--data-dir {data_dir!r}: not a folder (leave it out to use $SVAE_DATA_DIR, else the cache, "
                     f"where missing files are downloaded)")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # --help and --version exit here, without asking git
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    code_version()  # the commit of the code loaded now, which a run's records name however long it takes
    check_outputs(args, getattr(args, "parser", parser))
    from svae.data.store import DataError
    from svae.train import CheckpointError, NonFiniteLossError

    try:
        return args.run(args)
    except NonFiniteLossError as error:  # a diverged run: the message says what was kept, no traceback
        print(f"svae: error: {error}", file=sys.stderr)
        if getattr(args, "json", None):
            print(f"svae: the record {_diverged_record(args, error)} says so (\"status\": \"diverged\", no "
                  f"metrics)", file=sys.stderr)
        if args.debug:
            raise
        return 1
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"\nsvae: interrupted; {_what_was_kept(args)}", file=sys.stderr)
        return 130  # the shell's code for a process ended by SIGINT
    except (DataError, CheckpointError) as error:  # caused by the user's files: one line, no traceback
        if args.debug:
            raise
        print(f"svae: error: {error}", file=sys.stderr)
        return 1


def _what_was_kept(args) -> str:
    """What an interrupted command keeps, and how to go on from it."""
    if args.run is _reproduce:
        checkpoints = " (an unfinished MNIST run resumes from its checkpoint there)" if args.experiment == "mnist" else ""
        return (f"the records of the finished runs are in {args.out_dir}/: run the same command again to go on"
                f"{checkpoints}")
    checkpoint = getattr(args, "checkpoint", None)
    if checkpoint and Path(checkpoint).exists():
        return f"the checkpoint {checkpoint} holds the last finished epoch: run the same command again to resume"
    if checkpoint:
        return f"no epoch had finished, so there is no checkpoint at {checkpoint} yet"
    if args.run is _mnist:
        return "nothing was kept: pass --checkpoint PATH to be able to resume an interrupted run"
    return "nothing was kept (this command has no checkpoint): run it again"


def _diverged_record(args, error: Exception):
    """The record of a run that diverged: its arguments, no metrics, and why."""
    from svae.records import write_record

    plain = (str, int, float, bool, type(None), list, tuple)
    config = {k: v for k, v in vars(args).items() if k not in ("run", "parser") and isinstance(v, plain)}
    return write_record(args.json, command=f"svae {args.run.__name__.lstrip('_')}", config=config, metrics={},
                        wall_time=None, status="diverged", error=str(error))


if __name__ == "__main__":
    sys.exit(main())
