#!/usr/bin/env python3
"""Benchmark the generated Dockerfiles and tooling against two baselines, in one run.

    nox -s bench -- [--out build/bench] [--quick]

On the ML sample (scripts/sample.py), each part builds the variants it compares on the same
machine in the same run, so the report's headline is ratios: absolute times drift. The
baselines: uv's own Docker example applied to the sample (what a careful team writes from uv's
guide) and a naive file (what most repos start with).
1. Scenarios, optimized vs the uv example vs naive: cold (core alone; all services in one
   build), code-only, shared change, dependency added, version bump; with where a cold build's
   time went (apt, uv's download, install and bytecode, exporting layers and unpacking them).
2. The session's cost: `nox -s build` vs the command it runs (bake, or Compose) run alone, on a
   no-change build of core and of every service; a code-only change through `nox -s build` vs
   the floor, the same change built by bare `docker buildx build` (every other step cached).
3. Container start: `docker run` to the first 200 on /health, the service's import time and
   that of numpy, pandas and pyarrow (what bytecode compiled in the image saves), for the
   optimized, the uv example's, the naive and the 0.2.0 release's images, in turns.
4. Scale: 1, 4 and 8 services (CPU and GPU), cold and code-only, the three variants
   (scale.png).
5. Image stores: parts 1 and 4 (8 services; 4 with --quick) again on a second engine with the
   classic store, from copies of the same repos; the targets are this engine's (the containerd
   store), reported for both.
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


# The variants each part compares, in the order their builds are measured after an edit (the
# optimized first: it downloads what an edit adds, into the uv cache mount the uv example
# shares); cold builds go in the reverse order, each from an empty builder cache.
VARIANTS = ("optimized", "uvexample", "naive")
PARTS = ("session", "start", "scale", "classic", "machine")  # the parts after the scenarios
LABELS = {"optimized": "optimized", "uvexample": "uv example", "naive": "naive"}


def scenarios(variants: list[Variant], store: str) -> list[Measure]:
    """Part 1: every scenario on every variant; the edits are made to all before any builds."""
    measures: list[Measure] = []
    for name, what, edit, services in SCENARIOS:
        log(f"scenario {name} ({store} store): {what}")
        for variant in variants if edit else []:
            edit(variant.repo)
        for variant in variants if edit else variants[::-1]:
            if edit is None:  # cold: the builder cache the variants share goes first
                sample.empty_builder_cache(variant.client())
            measures += build(variant, name, services)
        for variant in variants[::-1] if edit is None else []:  # warm again, for the next ones
            build(variant, "warm-up", SERVICES)
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


def scale(workdir: Path, sizes: tuple[int, ...], docker_host: str = "") -> list[Measure]:
    """Part 4: n services, half CPU and half GPU, cold and code-only, the three variants."""
    measures = []
    for n in sizes:
        services = [scale_service(i) for i in range(n)]
        names = [s["name"] for s in services]
        repo = sample.make_sample(workdir / f"scale-{n}", services=services, IMAGE_PREFIX=f"s{n}")
        variants = [
            Variant("optimized", repo, "compose.yaml", f"s{n}", names, docker_host, tooling=True),
            *baselines(repo, workdir / f"scale-{n}", names, docker_host),
        ]
        for variant in variants[::-1]:
            log(f"scale: {n} services, {variant.name}")
            sample.empty_builder_cache(variant.client())
            cold = build(variant, f"scale-{n}-cold", names)[-1]  # the "(all)" row, or the one
            sample.edit_code(variant.repo, names[0])
            code = build(variant, f"scale-{n}-code-only", names)[-1]
            measures += [replace(cold, service="(all)"), replace(code, service="(all)")]
    return measures


def baselines(repo: Path, dest: Path, names: list[str], docker_host: str = "") -> list[Variant]:
    """The uv example's and the naive copies of a sample `repo`, made beside `dest`."""
    return [
        Variant(
            name,
            make(repo, dest.with_name(f"{dest.name}-{name}"), HOST_CA_BUNDLE),
            f"compose.{name}.yaml",
            name,
            names,
            docker_host,
        )
        for name, make in (("uvexample", sample.make_uv_example), ("naive", sample.make_naive))
    ]


def classic_store(pristine: list[Variant], workdir: Path, sizes: tuple[int, ...]) -> dict:
    """Part 5: parts 1 and 4 again on a second engine with the classic store, from copies of
    the repos as they were before part 1 (the same Dockerfiles, the same base images)."""
    name = "benchstore"
    url = second_engine.start(name, store="classic")
    try:
        load_base_images(pristine[0].repo, url)
        variants = [replace(v, docker_host=url) for v in pristine]
        found = {"scenarios": [asdict(m) for m in scenarios(variants, "classic")]}
        found["scale"] = [asdict(m) for m in scale(workdir / "classic", sizes, url)]
    finally:
        second_engine.stop(name)
    return found


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


def ratio(measures: list[Measure], scenario: str, baseline: str, service: str = "(all)") -> float:
    """Optimized seconds over a baseline's, in one scenario."""
    other = pick(measures, scenario, baseline, service).seconds
    return pick(measures, scenario, "optimized", service).seconds / max(other, 1e-9)


def build_targets(
    measures: list[Measure], scaled: list[Measure], code_bytes: int
) -> list[tuple[str, Any, bool]]:
    """The targets measured by part 1's scenarios and part 4's scale series on one engine."""

    def opt(scenario: str, service: str) -> Measure:
        return pick(measures, scenario, "optimized", service)

    code, dep, bump = (
        opt("code-only", "core"),
        opt("dependency", "tts"),
        opt("version-bump", "core"),
    )
    shared = [sorted({r.split(":")[0] for r in opt("shared", s).ran}) for s in SERVICES]
    base_runs = sum("RUN groupadd" in r for r in opt("cold-all", "(all)").ran)
    context = opt("cold-core", "core").context_bytes
    largest = max((int(m.scenario.split("-")[1]) for m in scaled), default=0)
    ratios = [  # (what, scenario, service, baseline, at most)
        ("dependency added", "dependency", "tts", "uvexample", 0.7),
        ("cold build of every service", "cold-all", "(all)", "uvexample", 0.7),
        ("code-only", "code-only", "core", "uvexample", 1.0),
        ("dependency added", "dependency", "tts", "naive", 0.5),
        ("cold build of every service", "cold-all", "(all)", "naive", 0.8),
    ]
    rows: list[tuple[str, Any, bool]] = []
    for what, scenario, service, baseline, most in ratios:
        value = ratio(measures, scenario, baseline, service)
        rows.append((f"{what}: at most {most}x {LABELS[baseline]}", value, value <= most))
    if largest >= 8:
        cold8 = ratio(scaled, "scale-8-cold", "naive")
        rows.append(("cold build of 8 services: at most 0.9x naive", cold8, cold8 <= 0.9))
    rows += [
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
    return [(t, f"{v:.2f}x" if isinstance(v, float) else v, ok) for t, v, ok in rows]


def targets(results: dict[str, Any], code_bytes: int) -> list[dict[str, Any]]:
    """Each target, measured on this engine (the containerd store): what it asks, the value, met
    or not; and its value on the classic store where part 5 measured it."""
    found = build_targets(
        [Measure(**m) for m in results["scenarios"]],
        [Measure(**m) for m in results.get("scale", [])],
        code_bytes,
    )
    classic = {}
    if "classic" in results:
        classic = {
            t: v
            for t, v, _ in build_targets(
                [Measure(**m) for m in results["classic"]["scenarios"]],
                [Measure(**m) for m in results["classic"].get("scale", [])],
                code_bytes,
            )
        }
    first = next(i for i, row in enumerate(found) if row[0].startswith("code-only: only"))
    if "session" in results:
        cost = results["session"]
        overhead = cost["nox -s build core"] - cost["nox's command, core"]
        floor = cost["code-only through nox"] / cost["code-only, floor: buildx build core"]
        found[first:first] = [
            (
                "code-only through nox -s build: at most 1.3x the floor",
                f"{floor:.2f}x",
                floor <= 1.3,
            ),
            (
                "nox -s build overhead, no-change build: at most 0.3 s",
                f"{overhead:+.2f} s",
                overhead <= 0.3,
            ),
        ]
    if "start" in results:
        slower = results["start"]["optimized"]["start"] / results["start"]["previous"]["start"]
        found.append(
            (
                "container start: at most 10% slower than 0.2.0's images",
                f"{slower:.2f}x",
                slower <= 1.1,
            )
        )
    found += [
        (f"dive efficiency of {image} at least 0.98", str(score), (score or 0) >= 0.98)
        for image, score in results.get("dive", {}).items()
    ]
    return [
        {"target": t, "value": v, "met": bool(ok), "classic": classic.get(t, "")}
        for t, v, ok in found
    ]


def plot(measures: list[Measure], dest: Path) -> None:
    """scale.png: seconds by number of services, cold and code-only, optimized and naive."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({int(m.scenario.split("-")[1]) for m in measures})
    figure, axes = plt.subplots(figsize=(7, 4.2))
    colors = {"optimized": "tab:blue", "uvexample": "tab:green", "naive": "tab:orange"}
    for kind, style in (("cold", "-"), ("code-only", "--")):
        for variant, color in colors.items():
            seconds = [pick(measures, f"scale-{n}-{kind}", variant, "(all)").seconds for n in sizes]
            label = f"{LABELS[variant]}, {kind}"
            axes.plot(sizes, seconds, style, marker="o", color=color, label=label)
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


def seconds_row(
    label: list[str], measures: list[Measure], scenario: str, service: str
) -> list[str]:
    """A table row: label cells, each variant's seconds, then the optimized's ratio to each
    baseline."""
    found = {v: pick(measures, scenario, v, service).seconds for v in VARIANTS}
    ratios = [found["optimized"] / max(found[v], 1e-9) for v in VARIANTS[1:]]
    return [*label, *(f"{found[v]:.1f}" for v in VARIANTS), *(f"{r:.2f}" for r in ratios)]


SECONDS_HEADERS = [*(f"{LABELS[v]} s" for v in VARIANTS), "vs uv example", "vs naive"]
# The phases of a cold build, as the breakdown table shows them (Measure.phases' keys).
PHASES = [
    ("steps", "steps"),
    ("apt", "apt"),
    ("uv download", "uv: download"),
    ("uv install", "uv: install"),
    ("bytecode", "uv: bytecode"),
    ("exporting", "exporting"),
    ("export: exporting layers", "export: layers"),
    ("export: unpacking", "export: unpacking"),
]


def scenario_tables(measures: list[Measure], scaled: list[Measure]) -> list[str]:
    """Part 1's table, the breakdown of its cold builds, and part 4's table, for one engine."""
    rows = []
    for scenario, _, _, services in SCENARIOS:
        for service in services if len(services) == 1 else [*services, "(all)"]:
            opt = pick(measures, scenario, "optimized", service)
            runs = [pick(measures, scenario, v, service) for v in VARIANTS]
            rows.append(
                [
                    *seconds_row([scenario, service], measures, scenario, service),
                    " ".join(f"{m.run}/{m.cached}" for m in runs),
                    human_size(opt.new_bytes),
                ]
            )
    headers = ["scenario", "service", *SECONDS_HEADERS, "steps run/cached", "new bytes (opt)"]
    lines = table(headers, rows)
    lines += ["", "Steps run/cached: optimized, uv example, naive.", ""]
    lines += ["Where a cold build's time went (seconds of the steps that ran, by phase, which"]
    lines += ["run in parallel; then BuildKit's export of the images, and its parts):", ""]
    cold = [
        m
        for m in measures
        if (m.scenario, m.service) in (("cold-core", "core"), ("cold-all", "(all)"))
    ]
    breakdown = [
        [m.scenario, LABELS[m.variant], f"{m.seconds:.1f}"]
        + [f"{m.phases.get(key, 0.0):.1f}" for key, _ in PHASES]
        for m in cold
    ]
    lines += table(["scenario", "variant", "wall s", *(label for _, label in PHASES)], breakdown)
    sizes = sorted({int(m.scenario.split("-")[1]) for m in scaled})
    scale_rows = [
        seconds_row([f"{n}, {kind}"], scaled, f"scale-{n}-{kind}", "(all)")
        for n in sizes
        for kind in ("cold", "code-only")
    ]
    if scale_rows:
        lines += ["", "Scale: every service in one build (scale.png on this engine):", ""]
        lines += table(["services, change", *SECONDS_HEADERS], scale_rows)
    return lines


def report(results: dict[str, Any], goals: list[dict[str, Any]]) -> str:
    """The Markdown report."""
    measures = [Measure(**m) for m in results["scenarios"]]
    lines = [
        "# Build benchmark: generated Dockerfiles and tooling vs uv's example and a naive file",
        "",
        f"{results['when']}, {results['engine']}. Same machine, same run: read the ratios.",
        "",
        "## Scenarios: this engine (containerd image store)",
        "",
    ]
    lines += scenario_tables(measures, [Measure(**m) for m in results.get("scale", [])])
    lines += ["", "Scenarios: " + "; ".join(f"**{s}**: {w}" for s, w, _, _ in SCENARIOS), ""]
    classic = results.get("classic")
    if classic:
        lines += ["## Scenarios: a second engine with the classic store", ""]
        classic_measures = [Measure(**m) for m in classic["scenarios"]]
        lines += scenario_tables(classic_measures, [Measure(**m) for m in classic.get("scale", [])])
        lines += ["", "## Image stores: core, the optimized Dockerfile", ""]
        store_rows = [
            [store, scenario, f"{m.seconds:.1f}", f"{m.export_seconds:.1f}"]
            for store, found in (("containerd", measures), ("classic", classic_measures))
            for scenario, service in (("cold-core", "core"), ("code-only", "core"))
            for m in [pick(found, scenario, "optimized", service)]
        ]
        lines += table(["store", "scenario", "seconds", "exporting to the store (s)"], store_rows)
        lines += [""]
    if "session" in results:
        lines += ["## The session's cost (medians)", ""]
        session = results["session"].items()
        lines += [*table(["what", "seconds"], [[k, f"{v:.2f}"] for k, v in session]), ""]
    if "start" in results:
        lines += ["## Container start (core; medians)", ""]
        heavy = DEPENDENCIES_IMPORT
        starts_rows = [
            [v, f"{s['start']:.2f}", f"{s['import']:.3f}", f"{s.get(heavy, float('nan')):.3f}"]
            for v, s in results["start"].items()
        ]
        headers = ["images", "docker run to first 200 (s)", "import time (s)", f"{heavy} (s)"]
        lines += [*table(headers, starts_rows), ""]
    if "second_machine" in results:
        lines += ["## A second machine (engine B, classic store): core through nox -s build", ""]
        machine = results["second_machine"].items()
        headers = ["B's build", "seconds, or steps run"]
        lines += [*table(headers, [[k, f"{v:.1f}"] for k, v in machine]), ""]
    lines += ["## Targets (this engine; the classic store's value beside)", ""]
    goal_rows = [
        [g["target"], str(g["value"]), "yes" if g["met"] else "NO", str(g.get("classic", ""))]
        for g in goals
    ]
    lines += table(["target", "measured", "met", "classic store"], goal_rows)
    failed = [
        Measure(**m)
        for found in (results, classic or {})
        for key in ("scenarios", "scale")
        for m in found.get(key, [])
    ]
    failures = sorted({f"{m.variant} {m.scenario}: {m.failure}" for m in failed if m.failure})
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
    parser.add_argument(
        "--only",
        dest="parts",
        action="append",
        choices=PARTS,
        help="the scenarios and only these parts (repeatable): a partial report, to iterate",
    )
    args = parser.parse_args()
    saved = args.out / "results.json"
    results = json.loads(saved.read_text()) if args.report else measure(args, saved)
    goals = targets(results, results["code_bytes"])
    text = report(results, goals)
    if results.get("scale"):
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
    parts = set(args.parts or PARTS)
    work = args.out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log("rendering the sample, its uv example and naive copies, and the 0.2.0 release's")
    repo = sample.make_sample(work / "optimized")
    variants = [
        Variant("optimized", repo, "compose.yaml", "morgan", tooling=True),
        *baselines(repo, work / "sample", SERVICES),
    ]
    optimized = variants[0]
    pristine = [  # part 5's copies, made before part 1 edits the repos
        replace(v, repo=work / "classic" / v.name) for v in variants
    ]
    for variant, copy in zip(variants, pristine, strict=True):
        shutil.copytree(variant.repo, copy.repo, symlinks=True)
    code = repo / "services/core/src"
    version = ["docker", "version", "--format", "{{.Server.Version}}"]
    engine = subprocess.run(version, capture_output=True, text=True, check=True).stdout.strip()
    buildx = subprocess.run(["docker", "buildx", "version"], capture_output=True, text=True)
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d"),
        "engine": f"Docker Engine {engine}, {buildx.stdout.strip() or 'no buildx'}, "
        f"{os.cpu_count()} cores",
        "code_bytes": sum(p.stat().st_size for p in code.rglob("*") if p.is_file()),
    }

    def part(key: str, value: Any) -> None:
        results[key] = value
        saved.write_text(json.dumps(results, indent=2))

    part("scenarios", [asdict(m) for m in scenarios(variants, "containerd")])
    if "session" in parts:
        log("the session's cost")
        part("session", session_cost(optimized, runs))
    if "start" in parts:
        log("container start")
        previous = previous_release(work)
        build(previous, "previous", ["core"])
        images = {v.name: v.image("core") for v in (*variants, previous)}
        part("start", starts(images, runs))
        core_llm = [optimized.image(s) for s in ("core", "llm")]
        part("dive", {image: dive_efficiency(image, work) for image in core_llm})
    if "scale" in parts:
        part("scale", [asdict(m) for m in scale(work, sizes)])
    if "classic" in parts:
        part("classic", classic_store(pristine, work, sizes[-1:]))
    if "machine" in parts:
        log("a second machine")
        part("second_machine", second_machine(optimized, work))
    return results


if __name__ == "__main__":
    sys.exit(main())
