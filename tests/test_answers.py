"""Bad answers are refused with a message that says what is allowed, and nothing is written."""

from __future__ import annotations

import pytest

from scripts.render import render

IDENTIFIER = "lowercase Python identifier"
PORT_RANGE = "integer from 1 to 65535"
BAD_ANSWERS = {
    "uppercase-name": ({"services": [{"name": "Core", "port": 8000}]}, IDENTIFIER),
    "hyphen-name": ({"services": [{"name": "my-svc", "port": 8000}]}, IDENTIFIER),
    "digit-first-name": ({"services": [{"name": "1svc", "port": 8000}]}, IDENTIFIER),
    "reserved-name": ({"services": [{"name": "shared", "port": 8000}]}, "not 'shared'"),
    "duplicate-names": (
        {"services": [{"name": "core", "port": 8000}, {"name": "core", "port": 8001}]},
        "core is used twice",
    ),
    "duplicate-ports": (
        {"services": [{"name": "core", "port": 8000}, {"name": "llm", "port": 8000}]},
        "port 8000 is used by two services",
    ),
    "empty-services": ({"services": []}, "non-empty YAML list"),
    "services-not-list": ({"services": "core"}, "non-empty YAML list"),
    "port-not-int": ({"services": [{"name": "core", "port": "http"}]}, PORT_RANGE),
    "port-out-of-range": ({"services": [{"name": "core", "port": 70000}]}, PORT_RANGE),
    "missing-port": ({"services": [{"name": "core"}]}, "at least name and port"),
    "gpu-not-bool": ({"services": [{"name": "core", "port": 1, "gpu": "yes"}]}, "true or false"),
    "apt-not-list": (
        {"services": [{"name": "core", "port": 1, "apt_packages": "curl"}]},
        "must be a list",
    ),
    "python-3.10": ({"python_version": "3.10"}, "3.11"),
    "cuda-two-parts": ({"cuda_version": "13.0"}, "must look like 13.0.1"),
    "cuda-prefixed": ({"cuda_version": "v13.0.1"}, "must look like 13.0.1"),
    "registry-scheme": ({"registry": "https://registry.example.com"}, "without scheme"),
    "mirror-no-slash": ({"image_mirror": "harbor.example.com/proxy"}, 'must end with "/"'),
    "index-not-url": ({"pypi_index_url": "nexus.example.com/simple"}, "http(s) URL"),
    "index-credentials": (
        {"pypi_index_url": "https://user:secret@nexus.example.com/simple"},
        "must not hold credentials",
    ),
    "syntax-with-space": ({"dockerfile_syntax": "docker/dockerfile 1"}, "image reference"),
    "slug-uppercase": ({"project_slug": "Morgan"}, "lowercase letters"),
}


@pytest.mark.parametrize(("answers", "message"), BAD_ANSWERS.values(), ids=list(BAD_ANSWERS))
def test_bad_answer_is_refused(tmp_path, answers, message):
    dest = tmp_path / "repo"
    with pytest.raises(ValueError, match=r"(?s)Valid|Invalid") as refused:
        render(dest, answers)
    assert message in str(refused.value)
    assert len(str(refused.value).splitlines()) == 1
    assert not dest.exists()


def test_cuda_questions_only_asked_with_gpu_services(tmp_path):
    repo = render(tmp_path / "repo", {"services": [{"name": "api", "port": 9000}]}, skip_tasks=True)
    answers = (repo / ".copier-answers.yml").read_text()
    assert "cuda_version" not in answers
    assert "CUDA_IMAGE" not in (repo / ".env.example").read_text()
