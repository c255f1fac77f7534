"""``nrstream data``: fetch data sets and show what a data source loads.

- ``nrstream data download NAME [--dest DIR] [--version V]``: calls the ``download`` the data
  source declares (:class:`nrstream.plugin.contracts.DataSource`), if it has one. The
  data lands in its own sub-folder of ``DIR``; nothing already in ``DIR`` is deleted.
- ``nrstream data info SOURCE [--set KEY=VALUE ...] [--json]``: loads the source (``KEY`` or
  ``data.options.KEY``: a source option; ``-o KEY=VALUE`` is the same) and prints
  where it loaded from, its sizes, classes and noise banks. Features that are not all
  finite (NaN/Inf) are an error: statistics or results computed from them would be too.
"""

from __future__ import annotations

import argparse
import json

from nrstream.commands.overrides import add_set_arguments, data_sets
from nrstream.errors import ConfigError, DataFileError, NrstreamError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("data", help="download data sets and inspect data sources")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    download = sub.add_parser("download", help="download a data set and verify its checksums")
    download.add_argument("name", help="data source, e.g. fashion_mnist or speech_commands")
    download.add_argument(
        "--dest",
        metavar="DIR",
        help="folder to download into; the data gets its own sub-folder there (fashion-mnist, "
        "speech_commands_v<version>) and nothing else in DIR is touched (default: $NRSTREAM_DATA, "
        "else ~/.cache/nrstream)",
    )
    download.add_argument("--version", dest="data_version", help="data set version (speech_commands: 0.01 or 0.02)")
    download.set_defaults(func=run_download)

    info = sub.add_parser("info", help="load a data source and print its sizes and where it came from")
    info.add_argument("source", help="data source name")
    add_set_arguments(info, "options", "--set num_classes=3")
    info.add_argument("--json", action="store_true", help="print Dataset.info as JSON")
    info.set_defaults(func=run_info)

    from nrstream.commands.recording import add_parser as add_make_recording  # issue 13

    add_make_recording(sub)


def run_download(args: argparse.Namespace) -> int:
    from nrstream.plugin.registry import get_registry

    download = get_registry().data_source(args.name).download
    if download is None:
        raise NrstreamError(f"data source {args.name!r} has nothing to download")
    kwargs = {"version": args.data_version} if args.data_version else {}
    try:
        path = download(args.dest, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cannot download {args.name!r}: {exc}") from exc
    print(f"{args.name}: data in {path}")
    return 0


def _check_finite(source: str, dataset) -> None:
    """Raise :class:`DataFileError` if any bank holds a NaN or infinite feature value."""
    import torch

    banks = [(split, bank) for split, bank in dataset.splits.items()]
    banks += [(f"noise {split}", bank) for split, bank in dataset.noise.items()]
    for split, bank in banks:
        chunks = torch.split(bank.features, 4096)  # bounds the temporary mask on large banks
        bad = torch.cat([~torch.isfinite(chunk).flatten(1).all(1) for chunk in chunks])
        if bool(bad.any()):
            raise DataFileError(
                f"data source {source!r}: {int(bad.sum())} of {len(bank)} samples of the {split} split hold NaN or "
                f"infinite features (first: sample {int(bad.nonzero()[0])}); fix the data (or set on_error: skip)"
            )


def run_info(args: argparse.Namespace) -> int:
    from nrstream.data.datasets import load_dataset
    from nrstream.plugin.registry import get_registry

    get_registry().get("data_source", args.source)  # an unknown name fails here, with suggestions
    try:
        dataset = load_dataset(args.source, **data_sets(args.sets, "data info", "options", ("options",))["options"])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"data source {args.source!r}: {exc}") from exc
    _check_finite(args.source, dataset)
    info = dict(dataset.info)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"source:   {info.get('source', args.source)}")
    for key in ("version", "root", "labels", "mode"):
        if key in info:
            print(f"{key + ':':9} {info[key]}")
    names = ", ".join(dataset.class_names[:12]) + (", ..." if dataset.num_classes > 12 else "")
    print(f"classes:  {dataset.num_classes} ({names})")
    print(f"features: {dataset.feature_size} per frame")
    for split, bank in dataset.splits.items():
        print(f"{split + ':':11} {len(bank):>7} samples, up to {bank.features.shape[1]} frames")
    for split, bank in dataset.noise.items():
        print(f"noise {split + ':':11} {len(bank)} recordings, {int(bank.lengths.sum())} frames")
    if "cache" in info:
        print(f"cache:    {'hit' if info['cache'].get('hit') else 'built'} ({info['cache'].get('key')})")
    return 0
