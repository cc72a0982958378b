"""The conda envs in envs/ agree with requirements.txt, and every rule names one.

No conda channel is reachable where this project is built, so `--use-conda` cannot
create the envs here; these checks are what keeps them from drifting from the pip
stack that is actually tested.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
ENV_FILES = sorted((ROOT / "envs").glob("*.yaml"))
RULE_FILES = sorted((ROOT / "rules").glob("*.smk"))

# conda-forge spells some packages differently from PyPI.
CONDA_TO_PYPI = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "matplotlib-base": "matplotlib",
    "pyyaml": "pyyaml",
    "snakemake-minimal": "snakemake",
}
# Conda packages that are tooling, not part of requirements.txt.
CONDA_TOOLING = {"python", "pip"}
# Directives after which Snakemake accepts `conda:` (not `run:`, see test below).
COMMAND_DIRECTIVES = ("shell", "script", "notebook", "wrapper")


def requirements() -> dict[str, str]:
    """requirements.txt as {canonical name: exact version}."""
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)\s*==\s*([^\s;]+)", line)
        assert m, f"requirements.txt: not an exact pin: {line!r}"
        pins[canonicalize_name(m.group(1).split("[")[0])] = m.group(2)
    return pins


def env_pins(env: dict, path: Path) -> dict[str, str | None]:
    """{canonical PyPI name: version or None if unpinned} from conda and pip entries."""
    pins: dict[str, str | None] = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            assert set(dep) == {"pip"}, f"{path.name}: unexpected mapping {dep}"
            for req in dep["pip"]:
                if req.startswith("-"):  # --index-url and friends
                    continue
                m = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)\s*(?:==\s*(\S+))?", req.strip())
                assert m, f"{path.name}: cannot parse pip entry {req!r}"
                pins[canonicalize_name(m.group(1).split("[")[0])] = m.group(2)
            continue
        # conda MatchSpec: "name", "name=1.2", "name==1.2", "channel::name=1.2"
        m = re.fullmatch(r"(?:[\w\-]+::)?([A-Za-z0-9_.\-]+)\s*(?:={1,2}\s*([^\s=]+))?(?:=\S+)?", str(dep))
        assert m, f"{path.name}: cannot parse conda entry {dep!r}"
        name = m.group(1).lower()
        if name in CONDA_TOOLING:
            continue
        pins[canonicalize_name(CONDA_TO_PYPI.get(name, name))] = m.group(2)
    return pins


def test_env_files_exist():
    names = {p.name for p in ENV_FILES}
    assert {"data.yaml", "torch.yaml"} <= names, names


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_parses(path: Path):
    env = yaml.safe_load(path.read_text())
    assert isinstance(env, dict), f"{path.name}: not a mapping"
    assert env.get("channels"), f"{path.name}: no channels (conda would use the user's defaults)"
    deps = env.get("dependencies")
    assert isinstance(deps, list) and deps, f"{path.name}: no dependencies list"


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_pins_match_requirements(path: Path):
    env = yaml.safe_load(path.read_text())
    reqs = requirements()
    pins = env_pins(env, path)
    assert pins, f"{path.name}: pins no package"
    for name, version in pins.items():
        assert version is not None, f"{path.name}: {name} is not pinned"
        # A package requirements.txt doesn't name has no tested version to agree with.
        assert name in reqs, f"{path.name}: {name} is not in requirements.txt"
        assert version == reqs[name], f"{path.name}: {name}=={version} but requirements.txt pins {reqs[name]}"


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_python_matches_project(path: Path):
    """The env's python satisfies pyproject's requires-python (script: jobs need it)."""
    env = yaml.safe_load(path.read_text())
    spec = next(
        (str(d) for d in env["dependencies"] if isinstance(d, str) and re.match(r"python\b", d)),
        None,
    )
    assert spec, f"{path.name}: python is not pinned"
    m = re.fullmatch(r"python\s*={1,2}\s*(\d+\.\d+)(?:\.\d+)?\S*", spec)
    assert m, f"{path.name}: python pin {spec!r} is not python=X.Y"
    requires = re.search(r'requires-python\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert requires, "pyproject.toml has no requires-python"
    assert SpecifierSet(requires.group(1)).contains(m.group(1) + ".0"), (
        f"{path.name}: python {m.group(1)} outside requires-python {requires.group(1)}"
    )


def test_torch_only_in_torch_env():
    """Data/report rules must not pull a multi-GB torch install."""
    data = env_pins(yaml.safe_load((ROOT / "envs/data.yaml").read_text()), Path("data.yaml"))
    assert "torch" not in data


# ---------------------------------------------------------------------------
# rules/*.smk: textual parse (importing them needs the whole workflow).

RULE_START = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:")


def rule_blocks() -> list[tuple[Path, str, str]]:
    """(file, rule name, block text) for every `rule NAME:`/`checkpoint NAME:` block."""
    blocks = []
    for path in RULE_FILES:
        current: tuple[str, list[str]] | None = None
        for line in path.read_text().splitlines():
            top_level = line[:1] not in ("", " ", "\t", "#")
            m = RULE_START.match(line)
            if m or (top_level and current is not None):
                if current is not None:
                    blocks.append((path, current[0], "\n".join(current[1])))
                current = (m.group(1), []) if m else None
            elif current is not None:
                current[1].append(line)
        if current is not None:
            blocks.append((path, current[0], "\n".join(current[1])))
    return blocks


def directive(block: str, name: str) -> str | None:
    """The text after `name:` (same line, or the next non-empty line), or None if absent."""
    lines = block.splitlines()
    for i, line in enumerate(lines):
        m = re.match(rf"^\s+{name}\s*:(.*)$", line)
        if m:
            value = m.group(1).strip()
            if not value:
                value = next((ln.strip() for ln in lines[i + 1 :] if ln.strip()), "")
            return value
    return None


def test_every_rule_has_a_conda_env():
    blocks = rule_blocks()
    if not blocks:
        pytest.skip("rules/*.smk defines no rule yet")
    problems = []
    for path, name, block in blocks:
        where = f"rules/{path.name}: rule {name}"
        # Snakemake refuses `conda:` with `run:`, and a rule without a command
        # (a pure target list) runs nothing; neither needs an env.
        if directive(block, "run") is not None:
            continue
        if not any(directive(block, d) is not None for d in COMMAND_DIRECTIVES):
            continue
        env = directive(block, "conda")
        if env is None:
            problems.append(f"{where}: no conda: directive")
            continue
        literal = re.fullmatch(r"""(['"])(.+)\1""", env)
        if literal:
            # Snakemake resolves a relative env path against the .smk file's folder.
            target = (path.parent / literal.group(2)).resolve()
            if not target.is_file():
                problems.append(f"{where}: conda env {literal.group(2)} not found ({target})")
            elif target.parent != (ROOT / "envs").resolve():
                problems.append(f"{where}: conda env {target} is not under envs/")
    assert not problems, "\n".join(problems)
