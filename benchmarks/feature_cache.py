"""Speed-up of the on-disk feature cache: a cold load (features computed) vs a warm one.

Loads a data source twice in fresh subprocesses against an empty ``$NRSTREAM_CACHE``
and reports the wall time of each ``load_dataset`` call and their ratio.

    python benchmarks/feature_cache.py speech_commands -o root=../shared/data/speech_commands_v0.01_sample
    python benchmarks/feature_cache.py synth_speech     # renders the corpus on the first run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

_CHILD = """
import json, sys, time
from nrstream.data.datasets import load_dataset
from nrstream.plugin.registry import get_registry
get_registry()  # plugin imports are not part of what the cache saves
options = json.loads(sys.argv[2])
start = time.perf_counter()
data = load_dataset(sys.argv[1], **options)
print(json.dumps({"seconds": time.perf_counter() - start, "sizes": data.sizes(),
                  "hit": data.info.get("cache", {}).get("hit")}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source")
    parser.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--cache", help="cache folder (default: a fresh temporary one)")
    args = parser.parse_args()
    import yaml

    options = {k: yaml.safe_load(v) for k, _, v in (o.partition("=") for o in args.option)}
    cache = args.cache or tempfile.mkdtemp(prefix="nrstream-cache-")
    env = dict(os.environ, NRSTREAM_CACHE=cache)
    runs = []
    for label in ("cold", "warm"):
        out = (
            subprocess.run(
                [sys.executable, "-c", _CHILD, args.source, json.dumps(options)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        runs.append(json.loads(out))
        print(f"{label}: {runs[-1]['seconds']:.2f} s  cache hit={runs[-1]['hit']}  sizes={runs[-1]['sizes']}")
    print(f"speed-up: {runs[0]['seconds'] / runs[1]['seconds']:.1f}x  (cache in {cache})")


if __name__ == "__main__":
    main()
