"""torch per service from one uv.lock, and every package from its locked index, on a real engine.

PyTorch's indexes are not reachable here, so the test serves its own (scripts/package_index.py):
torch-like wheels it builds (`torch` 2.5.1+cpu and +cu124, 1.5 MB each, with `torch.version.cuda`
and `torch.cuda` as the real ones have them) on a CPU and a CUDA index, the same CUDA files again
as a mirror, and a private package on an explicit index of its own, over HTTPS on the docker0
gateway (build steps cannot reach loopback), with a CA that builds trust through `ca_bundle`.
The rendered root pyproject.toml has PyTorch's URLs; the test points them at its indexes before
locking, as a team behind a firewall would point them at its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from pathlib import Path

import pytest

from scripts import package_index
from scripts.local_registry import free_port
from scripts.offline_images import ensure as ensure_base_images
from scripts.render import HOST_CA_BUNDLE, OFFLINE_ANSWERS, render, write_env
from tests.conftest import BIN, nox, run

pytestmark = pytest.mark.docker
PREFIX = "torchtest"  # image names of their own: torchtest/<service>
SERVICES = [
    {"name": "core", "port": 8000},
    {"name": "llm", "port": 8001, "torch": "cpu"},
    {"name": "tts", "port": 8002, "gpu": True, "torch": "cuda", "apt_packages": ["libsndfile1"]},
]
TORCH_CPU, TORCH_CUDA = "2.5.1+cpu", "2.5.1+cu124"


def wheel(folder: Path, name: str, version: str, files: dict[str, str], payload: int = 0) -> Path:
    """Build a pure-Python wheel with uv: `files` in module `name`, plus `payload` random bytes."""
    project = folder / f"{name}-{version}"
    module = project / "src" / name.replace("-", "_")
    module.mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "{version}"\nrequires-python = ">=3.9"\n\n'
        '[build-system]\nrequires = ["uv_build>=0.9,<0.14"]\nbuild-backend = "uv_build"\n'
    )
    for filename, text in files.items():
        (module / filename).write_text(text)
    if payload:  # random bytes: the wheel stays as big, compressed
        (module / "weights.bin").write_bytes(os.urandom(payload))
    out = folder / "wheels"
    run(
        [str(BIN / "uv"), "build", "--wheel", "--quiet", "--out-dir", str(out), str(project)],
        folder,
    )
    (built,) = out.glob(f"{name.replace('-', '_')}-{version}-*.whl")
    return built


def torch_wheel(folder: Path, version: str, cuda: str | None) -> Path:
    """A torch-like wheel of 1.5 MB: `torch.__version__`, `torch.version.cuda` (None on CPU
    builds) and `torch.cuda`, as the real one has them and the services and cuda_check read."""
    files = {
        "__init__.py": f'__version__ = "{version}"\nfrom . import cuda, version\n',
        "version.py": f'__version__ = "{version}"\ncuda = {cuda!r}\n',
        "cuda.py": "def is_available():\n    return False\n\n\n"
        "def get_device_name(index=0):\n    raise RuntimeError('no CUDA device')\n",
    }
    return wheel(folder, "torch", version, files, payload=1_500_000)


@pytest.fixture(scope="module")
def gateway(engine) -> str:
    """The address build steps reach the host on: the default bridge network's gateway."""
    return engine.networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"]


@pytest.fixture(scope="module")
def ca_bundle_file(gateway, tmp_path_factory) -> tuple[Path, Path, Path]:
    """(the host's CAs and the test indexes' CA in one bundle, their certificate, its key)."""
    if not shutil.which("openssl"):
        pytest.skip("openssl not found: it makes the test indexes' TLS certificate")
    folder = tmp_path_factory.mktemp("tls")
    ca, cert, key = package_index.certificates(folder, gateway)
    bundle = folder / "ca-bundle.pem"  # PyPI's CAs, and the test's
    bundle.write_bytes(HOST_CA_BUNDLE.read_bytes() + b"\n" + ca.read_bytes())
    return bundle, cert, key


@pytest.fixture(scope="module")
def indexes(gateway, ca_bundle_file, tmp_path_factory):
    """The test's package indexes on the gateway; stopped at the end, whatever happens."""
    folder = tmp_path_factory.mktemp("indexes")
    cpu, cuda = torch_wheel(folder, TORCH_CPU, None), torch_wheel(folder, TORCH_CUDA, "12.4")
    acme = wheel(folder, "acme-internal", "1.2.3", {"__init__.py": "VALUE = 42\n"})
    assert cpu.stat().st_size > 1_000_000 and cuda.stat().st_size > 1_000_000
    files = {"cpu": [cpu], "cu124": [cuda], "acme": [acme]}
    files |= {"mirror/cpu": [cpu], "mirror/cu124": [cuda]}  # the same files, elsewhere
    with package_index.serve(files, gateway, ca_bundle_file[1:]) as served:
        yield served


def set_env(repo: Path, **settings: str) -> None:
    """The repo's .env: its .env.example, the test's CA bundle and image names, and `settings`."""
    write_env(repo, repo.parent / "ca-bundle.pem", IMAGE_PREFIX=PREFIX, **settings)


def lock(repo: Path) -> None:
    """uv lock, trusting the test indexes' CA."""
    bundle = repo.parent / "ca-bundle.pem"
    run([str(BIN / "uv"), "lock", "--quiet"], repo, env={"SSL_CERT_FILE": str(bundle)})


@pytest.fixture(scope="module")
def built(engine, indexes, ca_bundle_file, tmp_path_factory) -> tuple[Path, str]:
    """One CPU and one GPU service taking torch, and core with a private package added by hand
    the uv way; built by `nox -s build`, with the build's output."""
    answers = {**OFFLINE_ANSWERS, "services": SERVICES, "cuda_version": "12.4.1"}
    repo = render(tmp_path_factory.mktemp("torch") / "repo", answers, skip_tasks=True)
    shutil.copy(ca_bundle_file[0], repo.parent / "ca-bundle.pem")
    root = repo / "pyproject.toml"
    text = root.read_text()
    assert 'url = "https://download.pytorch.org/whl/cu124"' in text  # 12.4.1 maps to cu124
    text = text.replace("https://download.pytorch.org/whl/cpu", indexes.url("cpu"))
    root.write_text(text.replace("https://download.pytorch.org/whl/cu124", indexes.url("cu124")))
    core = repo / "services/core/pyproject.toml"
    core.write_text(
        core.read_text().replace('    "shared",\n', '    "shared",\n    "acme-internal==1.2.3",\n')
        + f'\n[[tool.uv.index]]\nname = "acme"\nurl = "{indexes.url("acme")}"\nexplicit = true\n'
    )
    core.write_text(
        core.read_text().replace(
            "shared = { workspace = true }\n",
            'shared = { workspace = true }\nacme-internal = { index = "acme" }\n',
        )
    )
    lock(repo)
    set_env(repo)
    ensure_base_images(repo)
    out = nox(repo, "-s", "build")
    return repo, out.stdout + out.stderr


def in_image(engine, service: str, code: str) -> str:
    image = f"{PREFIX}/{service}:latest"
    return engine.containers.run(image, ["python", "-c", code], remove=True).decode().strip()


DISTRIBUTIONS = (
    "import importlib.metadata as m, json; "
    "print(json.dumps(sorted(d.metadata['Name'] + '==' + d.version for d in m.distributions())))"
)


def test_each_image_installs_its_own_torch(built, engine):
    """llm gets the CPU build, tts the CUDA build, core none: one lock, one variant per image."""
    seen = {}
    for service in ("core", "llm", "tts"):
        installed = json.loads(in_image(engine, service, DISTRIBUTIONS))
        seen[service] = [dist for dist in installed if dist.startswith("torch==")]
    assert seen == {"core": [], "llm": [f"torch=={TORCH_CPU}"], "tts": [f"torch=={TORCH_CUDA}"]}
    probe = "import torch; print(torch.__version__, torch.version.cuda)"
    assert in_image(engine, "llm", probe) == f"{TORCH_CPU} None"
    assert in_image(engine, "tts", probe) == f"{TORCH_CUDA} 12.4"
    # torch is a big package: in the heavy layer, installed from its own index alone
    heavy = "import os; print(sorted(os.listdir('/app/requirements/heavy')))"
    assert in_image(engine, "llm", heavy) == "['pytorch-cpu.txt']"
    assert in_image(engine, "tts", heavy) == "['pytorch-cuda.txt']"


def test_gpu_probe_reports_torchs_cuda_build(built, engine):
    """What `nox -s cuda_check` reads in each GPU image: torch's own CUDA version."""
    code = "import json, shared.gpu; print(json.dumps(shared.gpu.probe()))"
    probe = json.loads(in_image(engine, "tts", code))
    assert probe["torch"] == {
        "version": TORCH_CUDA,
        "cuda": "12.4",
        "cuda_available": False,
        "device": None,
    }


def test_private_package_from_its_explicit_index(built, engine, indexes):
    """A package added by hand with an explicit index and a source reaches the image."""
    assert in_image(engine, "core", "import acme_internal; print(acme_internal.VALUE)") == "42"
    assert any(path.startswith("/acme/acme-internal") for path in indexes.requests)


def test_a_gpu_services_tests_take_torchs_cpu_build_or_cuda_when_asked(built):
    """`nox -s tests -- tts` tests the GPU service on this GPU-less host with its `cpu` group
    (PyTorch's CPU build, from the same lock); `--cuda` takes its `cuda` group, as its image."""
    repo, _ = built
    test = repo / "services/tts/tests/test_tts_torch.py"
    test.write_text("import torch\n\n\ndef test_torch():\n    print('torch', torch.__version__)\n")
    trust = {"SSL_CERT_FILE": str(repo.parent / "ca-bundle.pem")}  # the test indexes' CA
    try:
        cpu = nox(repo, "-s", "tests", "--", "tts", "--", "-s", env=trust)
        cuda = nox(repo, "-s", "tests", "--", "tts", "--cuda", "--", "-s", env=trust)
    finally:
        test.unlink()
    assert "--package tts --group test --group cpu " in cpu.stderr
    assert "--package tts --group test --group cuda " in cuda.stderr
    assert f"torch {TORCH_CPU}\n" in cpu.stdout and f"torch {TORCH_CUDA}\n" in cuda.stdout
    assert "3 passed" in cpu.stdout and "3 passed" in cuda.stdout  # its own tests and this one


def test_small_dependency_leaves_the_torch_layer_cached(built, engine):
    repo, _ = built
    image = f"{PREFIX}/tts:latest"
    before = engine.images.get(image).attrs["RootFS"]["Layers"]
    pyproject = repo / "services/tts/pyproject.toml"
    original, lock_text = pyproject.read_text(), (repo / "uv.lock").read_text()
    try:
        pyproject.write_text(
            original.replace('    "shared",\n', '    "shared",\n    "humanize",\n')
        )
        lock(repo)
        out = nox(repo, "-s", "build", "--", "tts")
        after = engine.images.get(image).attrs["RootFS"]["Layers"]
    finally:
        pyproject.write_text(original)
        (repo / "uv.lock").write_text(lock_text)
    ran = [line for line in out.stdout.splitlines() if line.endswith("  DONE")]
    assert any("requirements/light" in line for line in ran), out.stdout
    assert not any("requirements/heavy" in line for line in ran), out.stdout
    # Every layer up to torch's install is the same; from the small packages' install on, not.
    # (deps' last layers: the small packages' COPY and RUN; then shared and the code.)
    assert after[:-4] == before[:-4] and after[-3] != before[-3]
    assert in_image(engine, "tts", "import humanize, torch; print(torch.__version__)") == TORCH_CUDA


def test_mirrors_from_env_are_used(built, engine, indexes):
    """UV_INDEX in .env (uv's syntax: name=url pairs) replaces indexes' URLs by name for image
    builds; the lock check still compares the committed files, which keep the canonical URLs."""
    repo, _ = built
    mirrors = {
        "pytorch-cpu": indexes.url("mirror/cpu"),
        "pytorch-cuda": indexes.url("mirror/cu124"),
    }
    set_env(repo, UV_INDEX=" ".join(f"{name}={url}" for name, url in mirrors.items()))
    start = len(indexes.requests)
    try:
        out = nox(repo, "-s", "build", "--", "llm", "tts")
        heavy = {
            service: in_image(
                engine, service, f"print(open('requirements/heavy/{name}.txt').read())"
            )
            for service, name in (("llm", "pytorch-cpu"), ("tts", "pytorch-cuda"))
        }
    finally:
        set_env(repo)
    asked = indexes.requests[start:]
    for index in ("cpu", "cu124"):
        assert any(path.startswith(f"/mirror/{index}/torch") for path in asked), asked
        assert not any(path.startswith(f"/{index}/") for path in asked), asked
    assert f"--index-url {mirrors['pytorch-cpu']}\n" in heavy["llm"]
    assert f"--index-url {mirrors['pytorch-cuda']}\n" in heavy["tts"]
    assert "uv.lock does not match" not in out.stderr
    assert TORCH_CUDA in in_image(engine, "tts", "import torch; print(torch.__version__)")


def test_unreachable_index_is_one_line(built, gateway):
    """A locked index the build cannot reach: one line naming the package and the index."""
    repo, _ = built
    closed = f"https://{gateway}:{free_port()}/cu124"  # nothing listens there
    set_env(repo, UV_INDEX=f"pytorch-cuda={closed}")
    try:
        out = nox(repo, "-s", "build", "--", "tts", check=False)
    finally:
        set_env(repo)
    assert out.returncode != 0
    [line] = [line for line in out.stderr.splitlines() if "build of tts failed" in line]
    assert re.search(
        rf"failed at \[(tts )?deps \d+/\d+\]: could not install torch=={re.escape(TORCH_CUDA)} "
        rf"from index pytorch-cuda \({re.escape(closed)}\): .+",
        line,
    ), out.stderr[-3000:]
    assert "Failed to fetch" in out.stderr  # uv's own lines, above the one-line reason


def test_mirror_naming_no_index_is_refused(built):
    repo, _ = built
    set_env(repo, UV_INDEX=f"pytorch-cdua=https://mirror.example.com/{uuid.uuid4().hex[:6]}")
    try:
        out = nox(repo, "-s", "build", "--", "tts", check=False)
    finally:
        set_env(repo)
    assert out.returncode != 0
    assert "UV_INDEX names pytorch-cdua, which no pyproject.toml declares" in out.stderr
    assert "acme, pytorch-cpu, pytorch-cuda" in out.stderr
