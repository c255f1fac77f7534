"""What the env's action check costs against a whole vector env step (issue 29: target < 2 %).

Times, interleaved round robin (a load spike hits both alike), the median over ``--repeats`` of:

* ``step``: ``StreamVectorEnv.step(actions)`` at ``B`` lanes x ``T`` frames per step (the check included);
* ``check``: :func:`nrstream.envs.checks.check_actions` alone on the same actions.

and prints both and their ratio. Usage::

    python benchmarks/env_action_check.py --batch 256 --chunk 100 --seconds 2 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import gymnasium
import torch

from nrstream.envs.checks import check_actions


def _per_call(fn, seconds: float) -> float:
    fn()  # warm-up
    calls, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        fn()
        calls += 1
    return (time.perf_counter() - began) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    envs = gymnasium.make_vec(
        "nrstream/Toy-v0",
        num_envs=args.batch,
        frames_per_step=args.chunk,
        device=args.device,
        vectorization_mode="vector_entry_point",
    )
    envs.reset(seed=0)
    env = envs.unwrapped
    shape, classes = tuple(env.action_space.shape), env.dataset.num_classes
    actions = torch.randint(0, classes, shape, device=args.device)
    steps, checks = [], []
    for _ in range(args.repeats):
        steps.append(_per_call(lambda: envs.step(actions), args.seconds))
        checks.append(_per_call(lambda: check_actions(actions, shape, classes, args.device), args.seconds))
    step, check = statistics.median(steps), statistics.median(checks)
    figures = {
        "benchmark": "env_action_check",
        "settings": vars(args),
        "machine": {"cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads()},
        "step_us": step * 1e6,
        "check_us": check * 1e6,
        "check_share_of_step": check / step,
    }
    print(f"B={args.batch} T={args.chunk} on {args.device}, median of {args.repeats}:")
    print(f"  vector env step (check included): {step * 1e6:9.1f} us")
    print(f"  action check alone:               {check * 1e6:9.1f} us  ({100 * check / step:.2f} % of a step)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)


if __name__ == "__main__":
    main()
