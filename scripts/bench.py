#!/usr/bin/env python3
"""Benchmark the generated Dockerfiles and tooling against a naive baseline, in one run.

    nox -s bench -- [--out build/bench] [--quick]

On the ML sample (scripts/sample.py), each part builds the variants it compares on the same
machine in the same run, so the report's headline is ratios: absolute times drift.
1. Scenarios, optimized vs naive: cold (core alone; all services in one build), code-only,
   shared change, dependency added, version bump.
2. The session's cost: `nox -s build` vs the command it runs (bake, or Compose) run alone, on a
   no-change build of core and of every service; a code-only change through `nox -s build` vs
   the floor, the same change built by bare `docker buildx build` (every other step cached).
3. Container start: `docker run` to the first 200 on /health, the service's import time and
   that of numpy, pandas and pyarrow (what bytecode compiled in the image saves), for the
   optimized, the naive and the 0.2.0 release's images, in turns.
4. Scale: 1, 4 and 8 services (CPU and GPU), cold and code-only, optimized vs naive
   (scale.png).
5. Image stores: core cold, code-only and with a dependency added, on this engine (containerd
   store) and on a second engine with the classic store.
6. A second machine: engine B, empty, building core from the registry cache engine A pushed,
   against its cold build without it.
It writes report.md, results.json and scale.png, prints the report and lists each target as met
or missed: a report, not a test (tests/ assert the structure, never a time).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts import sample, second_engine  # noqa: E402
from scripts.local_registry import free_port, serve  # noqa: E402
from scripts.offline_images import base_images  # noqa: E402
from scripts.render import HOST_CA_BUNDLE  # noqa: E402
from scripts.sample import COMPOSE, SERVICES, Measure, Variant, build  # noqa: E402
from uvdocker.report import human_size  # noqa: E402

NOX = [sys.executable, "-m", "nox"]
# A Dockerfile step that ran, as `nox -s build` prints it with BUILDKIT_PROGRESS=plain
STEP_RAN = re.compile(r"^\[[^\]]* \d+/\d+\] (?:RUN|COPY|ADD|WORKDIR) .*  DONE$", re.MULTILINE)
SCENARIOS = [
    ("cold-core", "builder cache empty; core alone", None, ["core"]),
    ("cold-all", "builder cache empty; every service in one build", None, SERVICES),
    ("code-only", "one line of core's code changed", sample.edit_code, ["core"]),
    (
        "shared",
        "one line of the shared package changed; every service",
        sample.edit_shared,
        SERVICES,
    ),
    (
        "dependency",
        "humanize added to tts",
        lambda r: sample.add_dependency(r, "tts", "humanize"),
        ["tts"],
    ),
    ("version-bump", "core's version bumped", sample.bump_version, ["core"]),
]


def log(text: str) -> None:
    print(f"bench: {text}", flush=True)


def median_seconds(action: Callable[[], object], runs: int) -> float:
    """The median wall time of `runs` calls of `action`."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def quiet(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    """Run a command that must succeed, its output kept for the error."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"bench: {' '.join(map(str, cmd))} failed:\n{proc.stdout}{proc.stderr}")


def scenarios(optimized: Variant, naive: Variant) -> list[Measure]:
    """Part 1: every scenario on both variants; the edits are made to both before either builds."""
    measures: list[Measure] = []
    for name, what, edit, services in SCENARIOS:
        log(f"scenario {name}: {what}")
        if edit:
            edit(optimized.repo)
            edit(naive.repo)
        for variant in (naive, optimized) if edit is None else (optimized, naive):
            if edit is None:  # cold: the builder cache both variants share goes first
                sample.empty_builder_cache()
            measures += build(variant, name, services)
        if edit is None:  # both warm again, unmeasured, for the scenarios after
            build(naive, "warm-up", SERVICES)
            build(optimized, "warm-up", SERVICES)
    return measures


def session_cost(optimized: Variant, runs: int) -> dict[str, float]:
    """Part 2: median seconds of no-change builds (nox, and the command it runs, alone), and of a
    code-only change through nox and through bare buildx (the floor), in turn."""
    repo = optimized.repo
    nox_build = [*NOX, "-s", "build", "--"]
    floor = [
        "docker", "buildx", "build", "--quiet", "--target", "app",
        "-f", "services/core/Dockerfile", "-t", optimized.image("core"),
        "--secret", f"id=ca_bundle,src={HOST_CA_BUNDLE}", "--secret", "id=netrc,src=/dev/null",
        ".",
    ]  # fmt: skip
    env = {**os.environ, **optimized.env()}
    core = sample.nox_build_command(repo, ["core"], optimized.env())
    every = sample.nox_build_command(repo, [], optimized.env())
    quiet([*nox_build, "core"], repo)  # warm, and the lock check remembered

    def code_only(cmd: list[str]) -> Callable[[], None]:
        def change() -> None:
            sample.edit_code(repo)
            quiet(cmd, repo, env)

        return change

    return {
        "nox's command, core": median_seconds(lambda: quiet(core, repo, env), runs),
        "nox -s build core": median_seconds(lambda: quiet([*nox_build, "core"], repo), runs),
        "nox's command, every service": median_seconds(lambda: quiet(every, repo, env), runs),
        "nox -s build (all)": median_seconds(lambda: quiet(nox_build, repo), runs),
        "plain compose build core": median_seconds(
            lambda: quiet([COMPOSE, "build", "core"], repo), runs
        ),
        "plain compose build (all)": median_seconds(lambda: quiet([COMPOSE, "build"], repo), runs),
        "buildx build core, all cached": median_seconds(lambda: quiet(floor, repo), runs),
        "code-only, floor: buildx build core": median_seconds(code_only(floor), runs),
        "code-only through nox": median_seconds(code_only([*nox_build, "core"]), runs),
    }


IMPORT_TIME = "import time; t = time.perf_counter(); import %s; print(time.perf_counter() - t)"
# core's third-party packages: what an ML service imports as it starts, and what bytecode
# compiled into the image speeds up.
CORE_PACKAGES = ", ".join(sample.SAMPLE_DEPENDENCIES["core"])  # their import names too
DEPENDENCIES_IMPORT = f"import of {CORE_PACKAGES}"


def start_seconds(image: str) -> dict[str, float]:
    """Seconds from `docker run` of a core image to the first 200 on /health, and the import
    times of core's code and of its third-party packages."""
    port = free_port()
    start = time.perf_counter()
    run = ["docker", "run", "-d", "-p", f"127.0.0.1:{port}:8000", "-e", "PORT=8000", image]
    container = subprocess.run(run, capture_output=True, text=True, check=True).stdout.strip()
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.perf_counter() - start > 120:
                    raise SystemExit(f"bench: {image} never answered /health") from None
                time.sleep(0.01)
        found = {"start": time.perf_counter() - start}
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)
    modules = {"import": "core.app", DEPENDENCIES_IMPORT: CORE_PACKAGES}
    for key, module in modules.items():
        probe = ["docker", "run", "--rm", "--entrypoint", "python", image, "-c"]
        out = subprocess.run(
            [*probe, IMPORT_TIME % module], capture_output=True, text=True, check=True
        )
        found[key] = float(out.stdout)
    return found


def starts(images: dict[str, str], runs: int) -> dict[str, dict[str, float]]:
    """Part 3: median start and import seconds of each variant's core image, the variants taking
    turns (so that a slow moment of the machine falls on all of them), 2 * runs + 1 times."""
    samples: dict[str, list[dict[str, float]]] = {variant: [] for variant in images}
    for _ in range(2 * runs + 1):
        for variant, image in images.items():
            samples[variant].append(start_seconds(image))
    return {
        variant: {key: statistics.median(s[key] for s in taken) for key in taken[0]}
        for variant, taken in samples.items()
    }


def previous_release(workdir: Path) -> Variant:
    """The sample rendered from the template's 0.2.0 release: today's images, for start times."""
    lines = subprocess.run(
        ["git", "log", "--format=%H %s"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    commit = next(line.split()[0] for line in lines if line.endswith(" Release 0.2.0"))
    repo = sample.make_sample(workdir / "previous", vcs_ref=commit, IMAGE_PREFIX="previous")
    return Variant("previous", repo, "compose.yaml", "previous")


def scale_service(i: int) -> dict[str, Any]:
    """The i-th service of the scale series: CPU and GPU in turn (cpu1, gpu1, cpu2, ...)."""
    gpu = bool(i % 2)
    name = f"{'gpu' if gpu else 'cpu'}{i // 2 + 1}"
    return {"name": name, "port": 9000 + i, "gpu": gpu, "apt_packages": ["libsndfile1"] * gpu}


def scale(workdir: Path, sizes: tuple[int, ...]) -> list[Measure]:
    """Part 4: n services, half CPU and half GPU, cold and code-only, optimized and naive."""
    measures = []
    for n in sizes:
        services = [scale_service(i) for i in range(n)]
        names = [s["name"] for s in services]
        repo = sample.make_sample(workdir / f"scale-{n}", services=services, IMAGE_PREFIX=f"s{n}")
        optimized = Variant("optimized", repo, "compose.yaml", f"s{n}", names, tooling=True)
        naive_repo = sample.make_naive(repo, workdir / f"scale-{n}-naive", HOST_CA_BUNDLE)
        naive = Variant("naive", naive_repo, "compose.naive.yaml", "naive", names)
        for variant in (naive, optimized):
            log(f"scale: {n} services, {variant.name}")
            sample.empty_builder_cache()
            cold = build(variant, f"scale-{n}-cold", names)[-1]  # the "(all)" row, or the one
            sample.edit_code(variant.repo, names[0])
            code = build(variant, f"scale-{n}-code-only", names)[-1]
            measures += [replace(cold, service="(all)"), replace(code, service="(all)")]
    return measures


def stores(optimized: Variant, workdir: Path) -> list[Measure]:
    """Part 5: core cold, code-only and with a dependency added, on this engine's store and on
    a second engine with the classic store (the same Dockerfile, a copy of the same repo)."""
    measures = []
    name = "benchstore"
    url = second_engine.start(name, store="classic")
    try:
        load_base_images(optimized.repo, url)
        for store, docker_host in (("containerd", ""), ("classic", url)):
            repo = workdir / f"store-{store}"
            shutil.copytree(optimized.repo, repo)
            variant = Variant(
                store, repo, "compose.yaml", "morgan", docker_host=docker_host, tooling=True
            )
            log(f"image store: {store}")
            sample.empty_builder_cache(variant.client())
            measures += build(variant, "store-cold", ["core"])
            sample.edit_code(repo)
            measures += build(variant, "store-code-only", ["core"])
            sample.add_dependency(repo, "core", "humanize")
            measures += build(variant, "store-dependency", ["core"])
    finally:
        second_engine.stop(name)
    return measures


def load_base_images(repo: Path, docker_host: str) -> None:
    """Copy the sample's base images (the stand-ins) into another engine: its own pull."""
    second_engine.load(docker_host, base_images(repo))


def second_machine(optimized: Variant, workdir: Path) -> dict[str, Any]:
    """Part 6: A pushes core with its registry cache; B, a second empty engine, builds it cold
    without that cache, then from it, through `nox -s build` both times."""
    name = "benchb"
    with serve(workdir / "registry-data") as registry:
        prefix = f"{registry}/morgan"
        quiet([*NOX, "-s", "push", "--", "core"], optimized.repo, env=env_with(IMAGE_PREFIX=prefix))
        url = second_engine.start(name, store="classic")
        try:
            load_base_images(optimized.repo, url)
            timings: dict[str, Any] = {}
            b = Variant("b", optimized.repo, "", "", docker_host=url)
            for label, cache in (("cold, no registry cache", "off"), ("registry cache", "")):
                sample.empty_builder_cache(b.client())
                env = env_with(DOCKER_HOST=url, IMAGE_PREFIX=prefix, REGISTRY_CACHE=cache)
                env["BUILDKIT_PROGRESS"] = "plain"
                cmd = [*NOX, "-s", "build", "--", "core"]
                start = time.perf_counter()
                proc = subprocess.run(cmd, cwd=b.repo, env=env, capture_output=True, text=True)
                timings[label] = time.perf_counter() - start
                if proc.returncode:
                    raise SystemExit(f"bench: engine B's build failed:\n{proc.stderr[-3000:]}")
                timings[f"{label}: steps run"] = len(STEP_RAN.findall(proc.stdout))
        finally:
            second_engine.stop(name)
    return timings


def env_with(**values: str) -> dict[str, str]:
    """This environment with `values` on top."""
    return {**os.environ, **values}


def dive_efficiency(image: str, workdir: Path) -> float | None:
    """dive's efficiency score for a local image (1.0: no byte wasted), from a saved archive."""
    archive, out = workdir / "dive.tar", workdir / "dive.json"
    subprocess.run(["docker", "save", "-o", str(archive), image], check=True)
    dive = [str(sample.BIN / "dive"), "--source", "docker-archive", str(archive)]
    try:
        proc = subprocess.run([*dive, "--json", str(out)], capture_output=True, check=False)
        if proc.returncode:
            return None
        return float(json.loads(out.read_text())["image"]["efficiencyScore"])
    finally:
        archive.unlink(missing_ok=True)
        out.unlink(missing_ok=True)


def pick(measures: list[Measure], scenario: str, variant: str, service: str) -> Measure:
    return next(
        m for m in measures if (m.scenario, m.variant, m.service) == (scenario, variant, service)
    )


def targets(results: dict[str, Any], code_bytes: int) -> list[dict[str, Any]]:
    """Each target, measured: what it asks, the value, met or not."""
    measures = [Measure(**m) for m in results["scenarios"]]

    def opt(scenario: str, service: str) -> Measure:
        return pick(measures, scenario, "optimized", service)

    def ratio(scenario: str, service: str) -> float:
        naive = pick(measures, scenario, "naive", service).seconds
        return opt(scenario, service).seconds / max(naive, 1e-9)

    code, dep, bump = (
        opt("code-only", "core"),
        opt("dependency", "tts"),
        opt("version-bump", "core"),
    )
    shared = [sorted({r.split(":")[0] for r in opt("shared", s).ran}) for s in SERVICES]
    base_runs = sum("RUN groupadd" in r for r in opt("cold-all", "(all)").ran)
    context = opt("cold-core", "core").context_bytes
    cost, start = results["session"], results["start"]
    overhead = cost["nox -s build core"] - cost["nox's command, core"]
    floor = cost["code-only through nox"] / cost["code-only, floor: buildx build core"]
    slower = start["optimized"]["start"] / start["previous"]["start"]
    dependency, cold = ratio("dependency", "tts"), ratio("cold-all", "(all)")
    rows = [
        ("dependency added: at most 0.5x naive", f"{dependency:.2f}x", dependency <= 0.5),
        ("cold build of every service: at most 0.8x naive", f"{cold:.2f}x", cold <= 0.8),
        ("code-only through nox -s build: at most 1.3x the floor", f"{floor:.2f}x", floor <= 1.3),
        (
            "nox -s build overhead, no-change build: at most 0.3 s",
            f"{overhead:+.2f} s",
            overhead <= 0.3,
        ),
        (
            "container start: at most 10% slower than 0.2.0's images",
            f"{slower:.2f}x",
            slower <= 1.1,
        ),
        ("code-only: only the code step ran", code.ran, [r[:4] for r in code.ran] == ["app:"]),
        (
            "code-only: new layer bytes within 1 MB of the code",
            f"{code.new_bytes} B",
            code.new_bytes <= code_bytes + 1_000_000,
        ),
        (
            "shared change: only shared and app steps ran",
            shared,
            all(set(s) <= {"shared", "app"} for s in shared),
        ),
        (
            "dependency added: only the new wheel downloaded",
            f"{dep.prepared} by uv",
            dep.prepared == 1,
        ),
        (
            "dependency added: apt downloaded nothing",
            f"{dep.apt_fetched} .deb",
            dep.apt_fetched == 0,
        ),
        ("dependency added: the big packages' layer cached", dep.ran, "heavy" not in str(dep.ran)),
        (
            "version bump: dependency layer cached",
            bump.ran,
            [r[:7] for r in bump.ran] == ["export:"],
        ),
        ("all together: base steps ran once per base image", f"{base_runs} runs", base_runs == 2),
        ("context at most 1 MB", human_size(context), context <= 1_000_000),
    ]
    rows += [
        (f"dive efficiency of {image} at least 0.98", str(score), (score or 0) >= 0.98)
        for image, score in results["dive"].items()
    ]
    return [{"target": t, "value": v, "met": bool(ok)} for t, v, ok in rows]


def plot(measures: list[Measure], dest: Path) -> None:
    """scale.png: seconds by number of services, cold and code-only, optimized and naive."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({int(m.scenario.split("-")[1]) for m in measures})
    figure, axes = plt.subplots(figsize=(7, 4.2))
    for kind, style in (("cold", "-"), ("code-only", "--")):
        for variant, color in (("optimized", "tab:blue"), ("naive", "tab:orange")):
            seconds = [pick(measures, f"scale-{n}-{kind}", variant, "(all)").seconds for n in sizes]
            axes.plot(sizes, seconds, style, marker="o", color=color, label=f"{variant}, {kind}")
    axes.set(xlabel="services in the repo", ylabel="seconds to build every service", xticks=sizes)
    axes.set_title("Build time as a repo grows (one build of every service)")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(dest, dpi=110)


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(headers) + " |",
        "|" + " --- |" * len(headers),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def ratio_row(label: list[str], opt: Measure, naive: Measure) -> list[str]:
    """A table row: label cells, then optimized and naive seconds and their ratio."""
    ratio = opt.seconds / max(naive.seconds, 1e-9)
    return [*label, f"{opt.seconds:.1f}", f"{naive.seconds:.1f}", f"{ratio:.2f}"]


def report(results: dict[str, Any], goals: list[dict[str, Any]]) -> str:
    """The Markdown report."""
    measures = [Measure(**m) for m in results["scenarios"]]
    lines = [
        "# Build benchmark: generated Dockerfiles and tooling vs a naive baseline",
        "",
        f"{results['when']}, {results['engine']}. Same machine, same run: read the ratios.",
        "",
        "## Scenarios (this engine)",
        "",
    ]
    rows = []
    for scenario, _, _, services in SCENARIOS:
        for service in services if len(services) == 1 else [*services, "(all)"]:
            opt = pick(measures, scenario, "optimized", service)
            naive = pick(measures, scenario, "naive", service)
            rows.append(
                [
                    *ratio_row([scenario, service], opt, naive),
                    f"{opt.run}/{opt.cached}",
                    f"{naive.run}/{naive.cached}",
                    human_size(opt.new_bytes),
                    human_size(naive.new_bytes),
                ]
            )
    headers = ["scenario", "service", "optimized s", "naive s", "ratio", "run/cached (opt)"]
    headers += ["run/cached (naive)", "new bytes (opt)", "new bytes (naive)"]
    lines += table(headers, rows)
    lines += ["", "Scenarios: " + "; ".join(f"**{s}**: {w}" for s, w, _, _ in SCENARIOS), ""]
    lines += ["## The session's cost (medians)", ""]
    lines += table(["what", "seconds"], [[k, f"{v:.2f}"] for k, v in results["session"].items()])
    lines += ["", "## Container start (core; medians)", ""]
    heavy = DEPENDENCIES_IMPORT
    starts_rows = [
        [v, f"{s['start']:.2f}", f"{s['import']:.3f}", f"{s.get(heavy, float('nan')):.3f}"]
        for v, s in results["start"].items()
    ]
    headers = ["images", "docker run to first 200 (s)", "import time (s)", f"{heavy} (s)"]
    lines += table(headers, starts_rows)
    scaled = [Measure(**m) for m in results["scale"]]
    scale_rows = [
        ratio_row(
            [m.scenario.removeprefix("scale-")], m, pick(scaled, m.scenario, "naive", "(all)")
        )
        for m in scaled
        if m.variant == "optimized"
    ]
    lines += ["", "## Scale: every service in one build (scale.png)", ""]
    lines += table(["services, change", "optimized s", "naive s", "ratio"], scale_rows)
    lines += ["", "## Image stores: core, the same Dockerfile", ""]
    store_rows = [
        [
            m["variant"],
            m["scenario"].removeprefix("store-"),
            f"{m['seconds']:.1f}",
            f"{m['export_seconds']:.1f}",
        ]
        for m in results["stores"]
    ]
    lines += table(["store", "scenario", "seconds", "exporting to the store (s)"], store_rows)
    lines += ["", "## A second machine (engine B, classic store): core through nox -s build", ""]
    machine = results["second_machine"]
    lines += table(
        ["B's build", "seconds, or steps run"], [[k, f"{v:.1f}"] for k, v in machine.items()]
    )
    lines += ["", "## Targets", ""]
    goal_rows = [[g["target"], str(g["value"]), "yes" if g["met"] else "NO"] for g in goals]
    lines += table(["target", "measured", "met"], goal_rows)
    failures = sorted({f"{m.variant} {m.scenario}: {m.failure}" for m in measures if m.failure})
    if failures:
        lines += ["", "Failed builds:", *[f"- {f}" for f in failures]]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, scale 1 and 4")
    parser.add_argument(
        "--report", action="store_true", help="only write the report from --out's results.json"
    )
    args = parser.parse_args()
    saved = args.out / "results.json"
    results = json.loads(saved.read_text()) if args.report else measure(args, saved)
    goals = targets(results, results["code_bytes"])
    text = report(results, goals)
    plot([Measure(**m) for m in results["scale"]], args.out / "scale.png")
    (args.out / "report.md").write_text(text)
    saved.write_text(json.dumps({**results, "targets": goals}, indent=2))
    print(text)
    print(f"written: {args.out / 'report.md'}, results.json and scale.png")
    missed = [goal["target"] for goal in goals if not goal["met"]]
    if missed:
        print("targets not met here:", "; ".join(missed))
    return 0


def measure(args: argparse.Namespace, saved: Path) -> dict[str, Any]:
    """Every part, in turn; the results so far are saved after each one."""
    runs, sizes = (3, (1, 4)) if args.quick else (7, (1, 4, 8))
    work = args.out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log("rendering the sample, its naive copy and the 0.2.0 release's")
    repo = sample.make_sample(work / "optimized")
    optimized = Variant("optimized", repo, "compose.yaml", "morgan", tooling=True)
    naive_repo = sample.make_naive(repo, work / "naive", HOST_CA_BUNDLE)
    naive = Variant("naive", naive_repo, "compose.naive.yaml", "naive")
    previous = previous_release(work)
    code = repo / "services/core/src"
    version = ["docker", "version", "--format", "{{.Server.Version}}"]
    engine = subprocess.run(version, capture_output=True, text=True, check=True).stdout.strip()
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d"),
        "engine": f"Docker Engine {engine}",
        "code_bytes": sum(p.stat().st_size for p in code.rglob("*") if p.is_file()),
    }

    def part(key: str, value: Any) -> None:
        results[key] = value
        saved.write_text(json.dumps(results, indent=2))

    part("scenarios", [asdict(m) for m in scenarios(optimized, naive)])
    log("the session's cost")
    part("session", session_cost(optimized, runs))
    log("container start")
    build(previous, "previous", ["core"])
    part("start", starts({v.name: v.image("core") for v in (optimized, naive, previous)}, runs))
    images = [optimized.image(s) for s in ("core", "llm")]
    part("dive", {image: dive_efficiency(image, work) for image in images})
    part("scale", [asdict(m) for m in scale(work, sizes)])
    part("stores", [asdict(m) for m in stores(optimized, work)])
    log("a second machine")
    part("second_machine", second_machine(optimized, work))
    return results


if __name__ == "__main__":
    sys.exit(main())
