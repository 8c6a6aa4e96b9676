"""The docs as a newcomer uses them: every command names flags its tool has, every link leads to a file of
the repository, and the flag reference is the one the code generates."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import ROOT

from cyclegan_tf import config, models

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# The absl tools' built-in flags, and what every tool accepts.
ABSL = {"help", "helpfull", "helpshort", "helpxml", "flagfile", "undefok", "logtostderr", "alsologtostderr",
        "verbosity", "v", "log_dir"}


def _defined(path: Path) -> set[str]:
    text = path.read_text()
    absl = set(re.findall(r"flags\.DEFINE_\w+\(\s*\"(\w+)\"", text))
    argparse = {name for group in re.findall(r"add_argument\(([^)]*)", text)
                for name in re.findall(r"\"--([\w-]+)\"", group)}
    return absl | argparse | {"help"}


def _tools() -> dict[str, set[str]]:
    train = {f.name for f in config.fields()} | {o.name for m in models.all_models() for o in m.options}
    tools = {"train.py": train | ABSL}
    for cli in ("build_data.py", "export_graph.py", "inference.py"):
        tools[cli] = _defined(ROOT / cli) | ABSL
    for name, module in (("cyclegan_tf.evaluate", "evaluation/score.py"), ("cyclegan_tf.web", "deploy/web.py"),
                         ("cyclegan_tf.report", "evaluation/report.py"), ("cyclegan_tf.demo", "demo.py"),
                         ("cyclegan_tf.data.shapescapes", "data/shapescapes.py"),
                         ("cyclegan_tf.doctor", "data/doctor.py")):
        tools[name] = _defined(ROOT / "cyclegan_tf" / module)
    return tools


def _commands(text: str) -> list[str]:
    """Command lines in code blocks and code spans, continuation lines joined."""
    blocks = re.findall(r"```[^\n]*\n(.*?)```", text, re.S)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    spans = re.findall(r"`([^`\n]*(?:python|\.py)[^`\n]*)`", re.sub(r"```.*?```", "", text, flags=re.S))
    return [c for c in lines + spans if re.search(r"(python[\d.]* (-m )?\S+|^\S+\.py)\b", c.strip())]


def test_every_command_in_the_docs_names_flags_its_tool_has() -> None:
    tools, wrong, seen = _tools(), [], 0
    for doc in DOCS:
        for command in _commands(doc.read_text()):
            for tool, flags in tools.items():
                match = re.search(rf"(?:^|\s)(?:\./)?{re.escape(tool)}(\s.*|$)", command)  # not bench/…
                if match:
                    seen += 1
                    for flag in re.findall(r"(?<![\w-])--([A-Za-z][\w-]*)", match.group(1).split("#")[0]):
                        if flag not in flags:
                            wrong.append(f"{doc.relative_to(ROOT)}: {tool} has no --{flag}: {command.strip()}")
                    break
    assert seen > 20 and not wrong, "\n".join(wrong)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_lead_to_files_of_the_repository(doc: Path) -> None:
    text = doc.read_text()
    missing = [link for link in re.findall(r"\]\(([^)#\s]+)[^)]*\)", text)
               if "://" not in link and not link.startswith("mailto:") and not (doc.parent / link).exists()]
    assert not missing, f"{doc.relative_to(ROOT)} links to files that are not here: {missing}"
    assert not re.search(r"SPEC §|\.\./shared", text), f"{doc.relative_to(ROOT)} cites a file outside the repository"


def test_the_flag_reference_is_current() -> None:
    assert (ROOT / "docs" / "flags.md").read_text() == models.flag_reference(), "stale: run `make docs`"
