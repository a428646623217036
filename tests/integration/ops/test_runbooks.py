"""Every command in the runbooks exists: the executable is installed or is a file of this tree,
playbooks pass --syntax-check, project modules answer --help, make targets exist, docker
subcommands and their flags are known to this Docker. Alert annotations link to real sections."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO

BIN = Path(sys.executable).parent
DOCS = [REPO / "docs" / "runbooks.md", REPO / "docs" / "operations.md"]
# The Pi/Hailo world: present on an edge, not on a controller or this test machine.
EXTERNAL = {
    "hailortcli": "HailoRT CLI, installed with the HailoRT driver on the edge",
    "tailscale": "the Tailscale client on GPUSRV and the edges",
    "vcgencmd": "Raspberry Pi firmware tool (temperature, throttling)",
}
OPERATORS = {"|", "||", "&&", ";", "&"}


def _blocks(path: Path) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.S)


def _commands(path: Path) -> list[list[str]]:
    """Each simple command of every bash block, as tokens; $(...) substitutions included."""
    out: list[list[str]] = []
    for block in _blocks(path):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            for sub in re.findall(r"\$\(([^()]*)\)", line):
                out += _split(sub)
            out += _split(line)
    return out


def _split(line: str) -> list[list[str]]:
    lex = shlex.shlex(line, posix=True, punctuation_chars="|&;")
    lex.whitespace_split = True
    lex.commenters = "#"
    cmds, cur = [], []
    for tok in lex:
        if tok in OPERATORS:
            if cur:
                cmds.append(cur)
            cur = []
        else:
            cur.append(tok)
    if cur:
        cmds.append(cur)
    return [[t for t in c if not re.match(r"^[A-Z_]+=", t)] or c for c in cmds]


def _all_commands() -> list[tuple[str, list[str]]]:
    return [(p.name, c) for p in DOCS for c in _commands(p)]


def _exe(word: str) -> str | None:
    if "/" in word:
        path = REPO / word if not word.startswith("/") else Path(word)
        return str(path) if path.exists() else None
    return shutil.which(word, path=f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin")


def test_the_runbooks_hold_the_seed_s_procedures():
    text = (REPO / "docs" / "runbooks.md").read_text()
    for heading in (
        "## Monitoring commands",
        "## Troubleshooting",
        "## Rollback procedure",
        "## Emergency procedures",
        "## Deployment log",
    ):
        assert heading in text
    assert len(_all_commands()) > 40


@pytest.mark.parametrize(("doc", "cmd"), _all_commands(), ids=lambda v: " ".join(v)[:70] if isinstance(v, list) else v)
def test_command_exists(doc: str, cmd: list[str]):
    if cmd[0] == "sudo":  # an edge's operator is not root; the command is what follows
        cmd = cmd[1:]
    word = cmd[0]
    if word in EXTERNAL:
        return
    exe = _exe(word)
    assert exe, f"{doc}: `{' '.join(cmd)}`: {word} is neither installed nor a file of this tree"
    name = Path(word).name
    if name == "ansible-playbook":
        playbooks = [t for t in cmd if t.endswith(".yml")]
        assert playbooks and all((REPO / p).is_file() for p in playbooks), cmd
        args = [exe, "--syntax-check", *playbooks]
        if "-i" in cmd:
            inventory = cmd[cmd.index("-i") + 1]
            assert (REPO / inventory).exists(), inventory
            args += ["-i", inventory]
        r = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    elif name == "ansible":
        assert (REPO / cmd[cmd.index("-i") + 1]).exists()
        module = cmd[cmd.index("-m") + 1]
        r = subprocess.run([str(BIN / "ansible-doc"), module], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    elif name.startswith("python") and "-m" in cmd:
        module = cmd[cmd.index("-m") + 1]
        if module == "json.tool":
            return
        r = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    elif name == "make":
        targets = set(re.findall(r"^([a-z][a-z-]*):", (REPO / "Makefile").read_text(), flags=re.M))
        assert set(cmd[1:]) <= targets, set(cmd[1:]) - targets
    elif name == "docker":
        _check_docker(cmd)
    elif name == "promtool":
        r = subprocess.run(
            [exe, *[t for t in cmd[1:3] if not t.startswith(("-", "http"))], "--help"], capture_output=True, text=True
        )
        assert r.returncode == 0, r.stderr


def _check_docker(cmd: list[str]) -> None:
    """The subcommand exists, and every --flag used is one this Docker (and its compose) knows."""
    words = [t for t in cmd[1:] if not t.startswith("-")]
    if words[0] == "compose":
        top = subprocess.run(["docker", "compose", "--help"], capture_output=True, text=True).stdout
        known = set(re.findall(r"^  ([a-z]+)\s{2,}", top, flags=re.M))
        sub = ["compose", next(w for w in words[1:] if w in known)]
    else:
        sub = [words[0]]
    helps = subprocess.run(["docker", *sub, "--help"], capture_output=True, text=True)
    assert helps.returncode == 0, helps.stderr
    text = helps.stdout
    if sub[0] == "compose":
        text += subprocess.run(["docker", "compose", "--help"], capture_output=True, text=True).stdout
    for flag in [t.split("=")[0] for t in cmd if t.startswith("--")]:
        assert flag in text, f"`{' '.join(cmd)}`: docker {' '.join(sub)} knows no {flag}"


def _slug(heading: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", heading.lower()).strip().replace(" ", "-")


def test_alert_runbook_links_point_at_sections():
    anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", (REPO / "docs" / "runbooks.md").read_text(), flags=re.M)}
    rules = yaml.safe_load((REPO / "monitoring" / "rules" / "edgeinfer.rules.yml").read_text())
    # runbook_url: the annotation name Alertmanager templates and Grafana look for.
    links = [r["annotations"]["runbook_url"] for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert links
    for link in links:
        path, anchor = link.split("#")
        assert path == "https://github.com/edgeinfer/deploy/blob/main/docs/runbooks.md" and anchor in anchors, link


def test_the_checker_rejects_a_missing_command():
    assert _split("frobnicate --now | grep x") == [["frobnicate", "--now"], ["grep", "x"]]
    assert _exe("frobnicate") is None
    assert _split("python3 -c 'a; b' && ls") == [["python3", "-c", "a; b"], ["ls"]]
