"""Mutation check of DRPose's gradient tests: each known-wrong variant of human3d/train/drpose.py must make at least
one test of tests/train/test_drpose_gradients.py fail.

Every mutation is a one-line source change applied in memory: a fresh Python process reads drpose.py, replaces the
line, executes the result into the imported module's namespace (nothing on disk changes) and runs the tests with
pytest, stopping at the first failure. The unmutated code runs first and must pass.

    PYTHONPATH=$PWD python tools/drpose_mutations.py            # all mutations, a table on stdout
    PYTHONPATH=$PWD python tools/drpose_mutations.py --only kl_through_x_t
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

TESTS = "tests/train/test_drpose_gradients.py"

#: name -> (what is wrong, exact source text, its replacement)
MUTATIONS: dict[str, tuple[str, str, str]] = {
    "input_not_detached": (
        "the UNet sees the live x_t (its input carries the graph)",
        "        x_in = x.detach()\n",
        "        x_in = x\n"),
    "ddim_update_detached": (
        "x_{t-1} detached: the reward cannot reach earlier training steps",
        "        x = alpha_prev * x0 + sigma_prev * eps\n",
        "        x = (alpha_prev * x0 + sigma_prev * eps).detach()\n"),
    "reward_on_x_tmin": (
        "the reward reads the noisy x_{t_min} instead of x0_hat",
        "    r = reward(split_view_latents(x0, reward_views), target)[0]\n",
        "    r = reward(split_view_latents(x, reward_views), target)[0]\n"),
    "kl_through_x_t": (
        "L_KL on eps_hat built from the live x_t (eps_hat_0 from the detached one): the old leak, alpha^2 weighted",
        "            kl = kl + ((out - refs[t]) ** 2).mean()\n",
        "            kl = kl + ((model_epsilon(out, x, alpha, sigma, prediction)"
        " - model_epsilon(refs[t], x_in, alpha, sigma, prediction)) ** 2).mean()\n"),
    "kl_leak_same_value": (
        "L_KL with the same value but a gradient path through the live x_t into earlier steps",
        "            kl = kl + ((out - refs[t]) ** 2).mean()\n",
        "            kl = kl + ((out - refs[t] + sigma * (x - x_in) / alpha) ** 2).mean()\n"),
    "kl_alpha_squared": (
        "L_KL on eps_hat from the detached x_t: no leak, but alpha_t^2-weighted for v-prediction",
        "            kl = kl + ((out - refs[t]) ** 2).mean()\n",
        "            kl = kl + ((model_epsilon(out, x_in, alpha, sigma, prediction)"
        " - model_epsilon(refs[t], x_in, alpha, sigma, prediction)) ** 2).mean()\n"),
    "all_outputs_with_graph": (
        "every UNet call builds a graph (stop_grad of the non-training outputs forgotten)",
        "        with (contextlib.nullcontext() if train else torch.no_grad()), autocast():\n",
        "        with contextlib.nullcontext(), autocast():\n"),
    "eps_from_live_x": (
        "eps_hat converted from v with the live x_t (changes the x_t path of the DDIM update)",
        "        eps = model_epsilon(out, x_in, alpha, sigma, prediction)\n",
        "        eps = model_epsilon(out, x, alpha, sigma, prediction)\n"),
    "skewed_schedule": (
        "the old schedule: s drawn from [t_min, top], coupling s to the early stop",
        "    s = rng.randint(1, top)\n    t_min = rng.randint(1, max_early_stop)\n",
        "    t_min = rng.randint(1, max_early_stop)\n    s = rng.randint(t_min, top)\n"),
}


def child(name: str | None) -> int:
    """Apply one mutation (None: none) in memory and run the tests; print one JSON line with the outcome."""
    import pytest

    import human3d.train.drpose as module

    if name is not None:
        _, old, new = MUTATIONS[name]
        src = Path(module.__file__).read_text()
        if src.count(old) != 1:
            print(json.dumps({"error": f"mutation {name}: the source line is not found exactly once"}))
            return 3
        exec(compile(src.replace(old, new), module.__file__, "exec"), module.__dict__)  # noqa: S102

    class Collector:
        def __init__(self) -> None:
            self.passed, self.failed = [], []

        def pytest_runtest_logreport(self, report) -> None:
            if report.when == "call" and report.passed:
                self.passed.append(report.nodeid)
            elif report.failed:
                crash = getattr(report.longrepr, "reprcrash", None)
                message = crash.message.splitlines()[0] if crash is not None else str(report.longrepr)[:120]
                self.failed.append((report.nodeid.split("::")[-1], message[:150]))

    collector = Collector()
    code = pytest.main(["-q", "-x", "-p", "no:cacheprovider", TESTS], plugins=[collector])
    print(json.dumps({"code": int(code), "passed": len(collector.passed), "failed": collector.failed}))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="*", default=None, help="mutation names (default: all)")
    args = parser.parse_args()
    if args.child is not None:
        return child(None if args.child == "none" else args.child)
    names = ["none", *(args.only or MUTATIONS)]
    rows, ok = [], True
    for name in names:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--child", name], capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        result = json.loads(lines[-1]) if lines else {"error": proc.stderr.strip().splitlines()[-1:]}
        seconds = time.perf_counter() - start
        if "error" in result:
            verdict, detail = "ERROR", str(result["error"])
            ok = False
        elif name == "none":
            verdict = "pass" if result["code"] == 0 else "FAIL"
            detail = f"{result['passed']} tests passed" if result["code"] == 0 else str(result["failed"])
            ok &= result["code"] == 0
        else:
            caught = bool(result["failed"])
            verdict = "caught" if caught else "MISSED"
            detail = "; ".join(f"{t}: {m}" for t, m in result["failed"]) if caught else "all tests passed"
            ok &= caught
        rows.append((name, verdict, f"{seconds:.0f}s", detail))
        print(f"{name:24s} {verdict:7s} {seconds:5.0f}s  {detail}", flush=True)
    print()
    print("| mutation | what is wrong | result | first failing test |")
    print("|---|---|---|---|")
    for name, verdict, _, detail in rows:
        what = MUTATIONS[name][0] if name in MUTATIONS else "(unmutated code)"
        print(f"| {name} | {what} | {verdict} | {detail.replace('|', '/')} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
