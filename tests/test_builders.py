"""Real BuildKit builders, from the BuildKit release in ../shared/buildkit: CI's docker-container
builder, created and baked on exactly as the rendered GitHub workflow and GitLab pipeline say,
against a local registry; and a team's remote builder (a standalone buildkitd over mutual TLS)
that two engines build through with `nox -s build`."""

from __future__ import annotations

import json
import os
import re
import shutil
import string
import subprocess
import tarfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest
import yaml

from scripts import offline_images, sample, second_engine
from scripts.local_registry import free_port
from scripts.render import OFFLINE_ANSWERS, render, write_env
from tests.conftest import run
from tests.test_ci import BAKE_VARIABLES, PROTECTED, SECRETISH, WORKFLOW, bake_json, branch_slug
from tests.test_engines import nox_env, steps
from uvdocker import build

pytestmark = pytest.mark.docker
SERVICES = ["core", "llm"]
# One rendered repo per test, with two services: the stages they share build once.
ANSWERS = {
    **OFFLINE_ANSWERS,
    "services": [{"name": "core", "port": 8000}, {"name": "llm", "port": 8001}],
}
# docker/setup-buildx-action's buildkitd flags when its input is empty (src/context.ts).
SETUP_BUILDX_FLAGS = (
    "--allow-insecure-entitlement security.insecure --allow-insecure-entitlement network.host"
)
# The dind service's TLS endpoint in the GitLab job's variables: the host's engine here.
DIND = ("DOCKER_HOST", "DOCKER_TLS_CERTDIR", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}")


def clean_env() -> dict[str, str]:
    """This environment without anything that would pick a builder, an engine or bake values."""
    picks = {"BUILDX_BUILDER", "BUILDKIT_PROGRESS", "BUILDKIT_IMAGE", "BUILDKIT_NETWORK"}
    return {
        k: v
        for k, v in os.environ.items()
        if k not in BAKE_VARIABLES | picks and not k.startswith("DOCKER_")
    }


def docker_config(folder: Path, registry: str = "") -> Path:
    """A Docker config of the test's own: buildx keeps its builders (and which one is current)
    there, so the host's current builder never changes. New docker-container builders read
    its buildkitd.default.toml, which lets them reach the local `registry` over plain HTTP."""
    (folder / "buildx").mkdir(parents=True)
    if registry:
        toml = f'[registry."{registry}"]\n  http = true\n'
        (folder / "buildx" / "buildkitd.default.toml").write_text(toml)
    return folder


def mirrored_repo(dest: Path, registry: str, engine, buildkit: Path, answers=None) -> Path:
    """The test repo with its base images taken from the local registry (a builder outside the
    engine cannot see the engine's images), the stand-ins pushed there, and the moby/buildkit
    stand-in built from the release."""
    repo = render(dest, {**ANSWERS, "image_mirror": f"{registry}/", **(answers or {})})
    offline_images.ensure(repo, push=True, buildkit=buildkit)
    labels = engine.images.get(offline_images.builder_image(repo)).labels
    assert "BuildKit v0.26.3" in labels[offline_images.STAND_IN_LABEL]
    return repo


# --- CI's docker-container builder -----------------------------------------------------------


@dataclass
class CIRun:
    """What a CI job's bake did, read from its builder before the job removed it."""

    builder: str
    version: str  # the BuildKit version the builder ran
    builds: dict[str, build.Build] = field(default_factory=dict)  # service -> its build's steps
    vertexes: dict[str, str] = field(default_factory=dict)  # vertex name -> error ("" if none)


def buildx_run(repo: Path, env: dict[str, str], *args: str, check: bool = True):
    """`docker buildx ARGS` with `env` on a clean environment (no builder or engine of ours)."""
    return run(["docker", "buildx", *args], repo, env, check=check, base=clean_env())


def read_run(repo: Path, env: dict[str, str], builder: str) -> CIRun:
    """The bake that just ran on `builder`, fresh for this job, from the builder's own records:
    `buildx history` lists one build per service and replays each as rawjson, which the bake
    test's reader (bake_json) reads. So CI's command runs as rendered (plain progress, which
    enforces bake's entitlements), and its steps are still read from BuildKit's JSON."""
    listed = buildx_run(repo, env, "ls", "--format", "json").stdout.splitlines()
    (node,) = next(b for b in map(json.loads, listed) if b["Name"] == builder)["Nodes"]
    found = CIRun(builder, node.get("Version", ""))
    history = ("history", "--builder", builder)
    for line in buildx_run(repo, env, *history, "ls", "--format", "json").stdout.splitlines():
        ref = json.loads(line)["ref"].rsplit("/", 1)[-1]
        inspect = buildx_run(repo, env, *history, "inspect", ref, "--format", "json")
        service = Path(json.loads(inspect.stdout)["Dockerfile"]).parent.name
        logs = ["docker", "buildx", *history, "logs", ref, "--progress", "rawjson"]
        found.builds[service], vertexes, status = bake_json(logs, repo, env, service)
        assert status == 0, found.builds[service].error
        found.vertexes.update(vertexes)
    return found


def expand(value: object, context: dict[str, str]) -> str:
    """A workflow value with each ${{ name }} replaced from `context`, which holds the names the
    steps use (env.*, secrets.*, runner.temp); any other expression fails the test."""

    def one(match: re.Match) -> str:
        name = match[1].strip()
        assert name in context, f"the test gives no value for ${{{{ {name} }}}}"
        return context[name]

    return EXPRESSION.sub(one, str(value))


def github_job(repo: Path, config: Path, temp: Path, values: dict, secrets: dict) -> CIRun:
    """The workflow's job as GitHub runs it for one push, each step read from the file:
    setup-buildx-action's `buildx create` (its inputs, its default buildkitd flags, --use) and
    `inspect --bootstrap`; the secrets step's script; bake-action's command line (each `allow`,
    then the `fs=*` it adds for buildx 0.18+, each file, a metadata file, --push when `push` is
    true; plain progress, as there is no TTY); then setup-buildx-action's post step, `buildx
    rm`. The checkout is the rendered repo; the local registry needs no login step."""
    workflow = yaml.safe_load((repo / WORKFLOW).read_text())
    job = workflow["jobs"]["images"]
    assert set(job["env"]) == set(values)  # the test gives every job variable its value
    uses = {step.get("uses", "").split("@")[0]: step for step in job["steps"]}
    context = {f"env.{k}": v for k, v in values.items()} | {"runner.temp": str(temp)}
    context |= {f"secrets.{name}": value for name, value in secrets.items()}
    env = {**values, "DOCKER_CONFIG": str(config), "RUNNER_TEMP": str(temp)}
    setup = uses["docker/setup-buildx-action"]["with"]
    name = f"builder-{uuid.uuid4()}"
    create = ["create", "--name", name, "--driver", setup.get("driver", "docker-container")]
    for opt in expand(setup["driver-opts"], context).splitlines():
        create += ["--driver-opt", opt.strip()] if opt.strip() else []
    buildx_run(repo, env, *create, "--buildkitd-flags", SETUP_BUILDX_FLAGS, "--use")
    try:
        buildx_run(repo, env, "inspect", "--bootstrap", "--builder", name)
        (write,) = [step for step in job["steps"] if step.get("name") == "Write build secrets"]
        script = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", write["run"]]
        step_env = {key: expand(value, context) for key, value in write["env"].items()}
        run(script, cwd=repo, env={**env, **step_env}, base=clean_env())
        bake = uses["docker/bake-action"]
        inputs = {key: expand(value, context) for key, value in bake["with"].items()}
        args = [
            arg for allowed in [*inputs["allow"].split(), "fs=*"] for arg in ("--allow", allowed)
        ]
        args += [arg for file in inputs["files"].split() for arg in ("--file", file)]
        args += ["--metadata-file", str(temp / "bake-metadata.json")]
        args += ["--push"] if inputs["push"].lower() == "true" else []
        step_env = {key: expand(value, context) for key, value in bake["env"].items()}
        step_env |= {"BUILDX_METADATA_WARNINGS": "true"}
        out = buildx_run(repo / inputs["source"], {**env, **step_env}, "bake", *args, check=False)
        assert out.returncode == 0, out.stderr[-4000:]
        return read_run(repo, env, name)
    finally:
        buildx_run(repo, env, "rm", name, check=False)


def gitlab_job(repo: Path, config: Path, rule: str, predefined: dict, project: dict) -> CIRun:
    """The pipeline's job as GitLab runs it: the file's variables, then those of the first
    matching `rule`, with $VARS expanded from `predefined` and the project's CI/CD variables
    winning; its `script` in a shell, then its `after_script` (which removes the builder).
    The dind service it talks to over TLS is the host's engine here."""
    job = yaml.safe_load((repo / ".gitlab-ci.yml").read_text())["images"]
    rules = {entry["if"]: entry.get("variables", {}) for entry in job["rules"]}
    variables = {**job["variables"], **rules[rule]}
    for key in DIND:
        del variables[key]
    variables = {
        k: string.Template(str(v)).safe_substitute(predefined) for k, v in variables.items()
    }
    env = {**predefined, **variables, **project, "DOCKER_CONFIG": str(config)}
    name = f"ci-{predefined['CI_JOB_ID']}"
    try:
        out = run(["sh", "-c", "\n".join(job["script"])], repo, env, check=False, base=clean_env())
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        return read_run(repo, env, name)
    finally:
        after = "\n".join(job["after_script"])
        run(["sh", "-c", after], repo, env, check=False, base=clean_env())


@pytest.mark.parametrize("ci", ["github", "gitlab"])
def test_ci_bakes_on_a_docker_container_builder_then_from_the_registry_cache(
    engine, buildx, registry, ca_bundle, buildkit_release, tmp_path, ci
):
    """CI's builder and bake, as rendered, with BUILDKIT_IMAGE pointing at the stand-in: a push
    to the (protected) default branch pushes each image and its <image>:buildcache; a branch
    push, on a fresh builder, finds every step (deps included) CACHED from the default branch's
    cache and writes only its own: on GitHub under BRANCH_CACHE_PREFIX, a repository of its own,
    on GitLab beside the image. On GitLab a CI/CD variable that is a build arg compose.yaml takes
    (UV_DEFAULT_INDEX, an index nothing answers) never reaches the build or its provenance,
    as BAKE_ENV does not name it. The builder is gone after each job."""
    answers = {"ci": ci, "registry": f"{registry.host}/{ci}"}
    repo = mirrored_repo(tmp_path / "morgan", registry.host, engine, buildkit_release, answers)
    config = docker_config(tmp_path / "docker-config", registry.host)
    image = offline_images.builder_image(repo)  # the pinned tag, as a CI variable would name it
    netrc = tmp_path / "netrc"
    netrc.write_text("machine example.invalid login team password not-a-secret\n")
    temp = tmp_path / "runner-temp"
    temp.mkdir()
    branches = f"{registry.host}/{ci}-branches/morgan" if ci == "github" else ""
    marker = f"https://provenance-marker-{uuid.uuid4().hex[:8]}.invalid/simple"

    def job(branch: str) -> CIRun:
        default = branch == "main"
        if ci == "github":
            values = {"BRANCH": branch, "DEFAULT_BRANCH": "main", "CACHE_WRITE": "true"}
            values |= {"TAG": "latest", "PUBLISH": str(default).lower()}
            values |= {"BRANCH_CACHE_PREFIX": branches, "BRANCH_LOGIN": "false"}
            # The repository variables: the stand-in, and the host's network, where the
            # registry listens on 127.0.0.1.
            values |= {"BUILDKIT_IMAGE": image, "BUILDKIT_NETWORK": "host"}
            # No CA_BUNDLE secret: the step copies the runner's own bundle (the host's bundle
            # would not fit in a secret, 48 KB at most). GitLab's job gets one as a File.
            secrets = {"CA_BUNDLE": "", "NETRC": netrc.read_text()}
            return github_job(repo, config, temp, values, secrets)
        rule = f"$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && {PROTECTED}"
        rule = rule if default else "$CI_COMMIT_BRANCH"
        predefined = {"CI_JOB_ID": str(uuid.uuid4().int % 10**9), "CI_DEFAULT_BRANCH": "main"}
        predefined |= {"CI_COMMIT_BRANCH": branch, "CI_PIPELINE_SOURCE": "push"}
        predefined |= {"CI_COMMIT_REF_PROTECTED": str(default).lower()}
        project = {"BUILDKIT_IMAGE": image, "BUILDKIT_NETWORK": "host"}
        project |= {"UV_DEFAULT_INDEX": marker}  # a group's CI/CD variable, say
        project |= {"CA_BUNDLE": str(ca_bundle[0]), "NETRC_FILE": str(netrc)}  # File variables
        return gitlab_job(repo, config, rule, predefined, project)

    first = job("main")
    assert first.version == "v0.26.3" and sorted(first.builds) == SERVICES
    prefix = f"{ci}/morgan"
    for name in SERVICES:
        assert registry.get(f"/v2/{prefix}/{name}/tags/list")["tags"] == ["buildcache", "latest"]
        inspect = ["imagetools", "inspect", "--format", "{{json .Provenance}}"]
        out = buildx_run(repo, {}, *inspect, f"{registry.host}/{prefix}/{name}:latest")
        args = json.loads(out.stdout)["SLSA"]["invocation"]["parameters"].get("args", {})
        assert "UV_DEFAULT_INDEX" not in args and marker not in out.stdout, args
        assert not [arg for arg in args if SECRETISH.search(arg)], args
    assert not engine.containers.list(all=True, filters={"name": first.builder})  # removed

    branch = "feature/ci-cache"
    second = job(branch)
    assert second.builder != first.builder and second.version == "v0.26.3"
    cached = {}
    own = f"buildcache-{branch_slug(branch)}"
    for name in SERVICES:
        imported = "importing cache manifest from "
        own_ref = f"{branches or f'{registry.host}/{prefix}'}/{name}:{own}"
        assert second.vertexes[f"{imported}{registry.host}/{prefix}/{name}:buildcache"] == ""
        assert "not found" in second.vertexes[imported + own_ref]
        built = second.builds[name].of(name)
        deps = [step for step in built if step.stage == "deps"]
        assert deps and all(step.cached for step in deps), (name, deps)
        assert built and all(step.cached for step in built), (name, built)
        tags = registry.get(f"/v2/{prefix}/{name}/tags/list")["tags"]
        if branches:  # the branch's cache is in its own repository; the image's is untouched
            assert sorted(tags) == ["buildcache", "latest"]
            own_repo = f"{ci}-branches/morgan/{name}"
            assert registry.get(f"/v2/{own_repo}/tags/list")["tags"] == [own]
        else:
            assert sorted(tags) == ["buildcache", own, "latest"]
        cached[name] = len(built)
    assert not engine.containers.list(all=True, filters={"name": second.builder})
    ran = {name: sum(not s.cached for s in b.of(name)) for name, b in first.builds.items()}
    print(f"\n{ci}: default branch on {first.builder}: steps run {ran}")
    print(f"{ci}: {branch} on a fresh {second.builder}: steps cached {cached}, none run")


# --- a team's remote builder -----------------------------------------------------------------


def tls_files(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl:
    buildkitd takes only clients whose certificate this CA signed."""
    folder.mkdir()
    newkey = ["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    files = {"ca": folder / "ca.pem", "ca-key": folder / "ca-key.pem"}
    ca = ["-x509", "-days", "1", "-subj", "/CN=test buildkit CA"]
    run([*newkey, *ca, "-keyout", str(files["ca-key"]), "-out", str(files["ca"])], folder)
    uses = {
        "server": "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        "client": "extendedKeyUsage=clientAuth\n",
    }
    for name, extensions in uses.items():
        files[name], files[f"{name}-key"] = folder / f"{name}.pem", folder / f"{name}-key.pem"
        (folder / f"{name}.ext").write_text(extensions)
        request = ["-subj", f"/CN={name}", "-keyout", str(files[f"{name}-key"])]
        run([*newkey, *request, "-out", f"{name}.csr"], folder)
        sign = ["openssl", "x509", "-req", "-in", f"{name}.csr", "-days", "1"]
        sign += ["-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial"]
        run([*sign, "-extfile", f"{name}.ext", "-out", str(files[name])], folder)
    return files


@dataclass
class Buildkitd:
    """A standalone buildkitd serving on 127.0.0.1 over mutual TLS, and its buildctl."""

    address: str
    tls: dict[str, Path]
    buildctl: list[str]  # buildctl --addr ADDRESS --tlscacert CA (no client certificate)


@pytest.fixture
def buildkitd(buildkit_release, registry, tmp_path):
    """buildkitd from the release, as a team runs a shared builder: TCP with mutual TLS (a
    builder runs anything as root, so no client gets in without a certificate the CA signed),
    bound to 127.0.0.1 here; the OCI worker on Debian's runc and the host's network; the local
    registry over plain HTTP. Stopped, and its state removed, however the test ends."""
    archive, _ = offline_images.buildkit_archive(buildkit_release, offline_images.host_arch())
    with tarfile.open(archive) as release:
        release.extractall(tmp_path / "buildkit", filter="data")
    binaries, state = tmp_path / "buildkit" / "bin", tmp_path / "buildkit-state"
    tls = tls_files(tmp_path / "tls")
    config = tmp_path / "buildkitd.toml"
    config.write_text(f'[registry."{registry.host}"]\n  http = true\n')
    address = f"tcp://127.0.0.1:{free_port()}"
    cmd = [binaries / "buildkitd", "--addr", address, "--root", state, "--config", config]
    cmd += ["--tlscacert", tls["ca"], "--tlscert", tls["server"], "--tlskey", tls["server-key"]]
    cmd += ["--oci-worker-net=host", "--containerd-worker=false"]
    log = tmp_path / "buildkitd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(arg) for arg in cmd], stdout=out, stderr=out)
    buildctl = [str(binaries / "buildctl"), "--addr", address, "--tlscacert", str(tls["ca"])]
    workers = [*buildctl, "--tlscert", str(tls["client"]), "--tlskey", str(tls["client-key"])]
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if subprocess.run([*workers, "debug", "workers"], capture_output=True).returncode == 0:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"buildkitd did not answer on {address}: {log.read_text()[-2000:]}")
        yield Buildkitd(address, tls, buildctl)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        # A buildkitd that died hard can leave its snapshots mounted: unmount, then remove.
        mounts = f"grep -o ' {state}/[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l"
        subprocess.run(["sh", "-c", mounts], check=False)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def engine_b():
    """A second, empty engine on this host (classic image store): a colleague's machine."""
    name = f"t{uuid.uuid4().hex[:6]}"
    url = second_engine.start(name, store="classic")
    try:
        yield docker.DockerClient(base_url=url, timeout=300), url
    finally:
        second_engine.stop(name)


def fetched(repo: Path, env: dict[str, str], builder: str, seen: set[str]) -> int:
    """Packages uv fetched (not in its cache mount) in the builds `builder` ran since the records
    in `seen` (which gets theirs): each build record replayed as rawjson, read by the benchmark's
    reader, and uv's "Prepared N packages" in the logs of the steps that ran."""
    history, total = ("history", "--builder", builder), 0
    for line in buildx_run(repo, env, *history, "ls", "--format", "json").stdout.splitlines():
        ref = json.loads(line)["ref"].rsplit("/", 1)[-1]
        if ref not in seen:
            seen.add(ref)
            logs = ["docker", "buildx", *history, "logs", ref, "--progress", "rawjson"]
            logged = sample.compose_json(logs, repo, env)
            lines = logged.output(list(logged.build.steps.values()))
            total += sum(
                int(found[1]) for line in lines if (found := sample._PREPARED.search(line))
            )
    return total


def table(output: str) -> str:
    """The table of steps run and cached per service that `nox -s build` ends with."""
    return output[output.index("service  seconds") :].strip()


def test_two_engines_share_a_remote_builder(
    engine, buildx, registry, ca_bundle, buildkit_release, buildkitd, engine_b, tmp_path
):
    """Engine A, then engine B, build one repo with `nox -s build` through one remote builder
    (BUILDX_BUILDER): B's first build runs no step A's ran and fetches no package, and a
    dependency added on B fetches only its own wheel: the layers and uv's cache mount live on
    the builder. The opening line names the builder; a client without a certificate is
    refused."""
    client_b, url_b = engine_b
    # Without a client certificate the handshake fails (its error varies); with one, it answers.
    refused = run([*buildkitd.buildctl, "debug", "workers"], tmp_path, check=False)
    assert refused.returncode != 0 and "failed to list workers" in refused.stderr
    tls = buildkitd.tls
    mine = ["--tlscert", str(tls["client"]), "--tlskey", str(tls["client-key"])]
    run([*buildkitd.buildctl, *mine, "debug", "workers"], tmp_path)

    repo = mirrored_repo(tmp_path / "morgan", registry.host, engine, buildkit_release)
    prefix = f"team{uuid.uuid4().hex[:6]}/morgan"  # images of this test alone, on engine A
    write_env(repo, ca_bundle[0], IMAGE_PREFIX=prefix)
    config = {"DOCKER_CONFIG": str(docker_config(tmp_path / "docker-config"))}
    team = f"team-{uuid.uuid4().hex[:6]}"
    certificates = f"cacert={tls['ca']},cert={tls['client']},key={tls['client-key']}"
    create = ["create", "--name", team, "--driver", "remote", "--driver-opt", certificates]
    buildx_run(repo, config, *create, buildkitd.address)
    env_a = {**config, "BUILDX_BUILDER": team, "BUILDKIT_PROGRESS": "plain"}
    env_b = {**env_a, "DOCKER_HOST": url_b}
    opening = f"; builder {team} (remote driver)"
    try:
        out_a = nox_env(repo, "-s", "build", env=env_a)
        assert opening in out_a.stderr
        seen: set[str] = set()
        fetched_a = fetched(repo, config, team, seen)
        assert fetched_a >= 7  # starlette, uvicorn and their dependencies, from the index
        ran_a = [step for step in steps(out_a.stdout) if step[2] == "DONE"]
        assert {stage for stage, _, _ in ran_a} == {"base", "export", "deps", "shared", "app"}
        for name in SERVICES:
            assert engine.images.get(f"{prefix}/{name}:latest")  # loaded into engine A

        assert client_b.images.list() == []
        out_b = nox_env(repo, "-s", "build", env=env_b)
        assert opening in out_b.stderr
        built_b = steps(out_b.stdout)
        assert built_b and all(status == "CACHED" for _, _, status in built_b), built_b
        assert fetched(repo, config, team, seen) == 0
        for name in SERVICES:
            assert client_b.images.get(f"{prefix}/{name}:latest")  # loaded into engine B

        sample.add_dependency(repo, "core", "humanize")  # a small package new to the builder
        out_dep = nox_env(repo, "-s", "build", "--", "core", env=env_b)
        ran_dep = sorted(
            (stage, text) for stage, text, done in steps(out_dep.stdout) if done == "DONE"
        )
        expected = [("app", "COPY"), ("deps", "COPY"), ("deps", "RUN"), ("export", "RUN")]
        assert ran_dep == [*expected, ("shared", "COPY")], ran_dep
        assert fetched(repo, config, team, seen) == 1  # humanize: the rest from the cache mount
        print(f"\nengine A, {team} cold: {fetched_a} packages fetched\n{table(out_a.stdout)}")
        print(f"engine B, first build: 0 packages fetched\n{table(out_b.stdout)}")
        print(f"engine B, humanize added to core: 1 package fetched\n{table(out_dep.stdout)}")
    finally:
        buildx_run(repo, config, "rm", team, check=False)
        for image in engine.images.list(name=f"{prefix}/*"):
            engine.images.remove(image.id, force=True)
