"""The docs the product cites are in the repository and say what the code does: every rule has its
section, every module is in the README's layout, every path a doc or message points at exists,
and the tree narrates no history of how it was made."""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.plans.findings import RULES_DOC, rule_doc
from orchestrator.plans.rules import RULES
from tests.support import ROOT

OUTSIDE_DOC = "DES" + "IGN"
"""A design sketch the project started from, which is not in the repository: nothing may cite it."""
TEXT_SUFFIXES = {".py", ".md", ".yml", ".yaml", ".cfg", ".toml", ".sh", ".txt"}
SOURCES = ("README.md", "CHANGELOG.md", "docs", "bench", "orchestrator", "infra", "policy", "playbooks", "tests",
           "scripts")


def tree_files() -> list[Path]:
    files: list[Path] = []
    for name in SOURCES:
        path = ROOT / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += [p for p in path.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES
                      and "__pycache__" not in p.parts and "fixtures" not in p.parts]
    return files


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a document's headings."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", markdown, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_every_rule_has_its_section() -> None:
    text = (ROOT / RULES_DOC).read_text(encoding="utf-8")
    for rule in RULES:
        assert f"### `{rule}`" in text, f"{rule_doc(rule)} has no section"
        assert rule in anchors(text)


def test_every_module_is_in_the_readme_layout() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = readme[readme.index("## Layout"):]
    layout = layout[:layout.index("\n## ", 4)] if "\n## " in layout[4:] else layout
    missing = []
    for module in sorted((ROOT / "orchestrator").rglob("*.py")):
        relative = module.relative_to(ROOT / "orchestrator")
        if module.name == "__init__.py" and relative.parent != Path("."):
            continue  # a package is listed by its directory
        if module.name not in layout:
            missing.append(str(relative))
    for package in sorted(p for p in (ROOT / "orchestrator").iterdir() if (p / "__init__.py").exists()):
        if f"{package.name}/" not in layout:
            missing.append(f"{package.name}/")
    assert missing == [], f"README's Layout does not list {missing}"


def test_every_doc_a_file_points_at_exists() -> None:
    broken = []
    for path in tree_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for target in set(re.findall(r"\b(docs/[A-Z_]+\.md)(?:#([\w-]+))?", text)):
            doc, anchor = target
            if not (ROOT / doc).is_file():
                broken.append(f"{path.relative_to(ROOT)}: {doc}")
            elif anchor and anchor not in anchors((ROOT / doc).read_text(encoding="utf-8")):
                broken.append(f"{path.relative_to(ROOT)}: {doc}#{anchor}")
        if re.search(r"\b" + OUTSIDE_DOC + r"\.md\b", text):
            broken.append(f"{path.relative_to(ROOT)}: {OUTSIDE_DOC}.md is not in the repository")
    assert broken == []


def test_the_tree_narrates_no_history_of_its_making() -> None:
    """History is git's and the CHANGELOG's; how the work was organized is nobody's business here."""
    words = re.compile(r"\b(" + "|".join(["iss" + "ue", "sess" + "ion", "(?:fir|seco|thi|four|fif|six|seven|eigh)"
                                          "(?:st|nd|rd|th)? sess" + "ion"]) + r")s?\b", re.I)
    allowed = re.compile(r"ssh|sshd|SSH|start_new_sess" + "ion|MaxSess" + "ions")
    found = []
    for path in tree_files():
        if path.name in ("CHANGELOG.md", Path(__file__).name):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if words.search(line) and not allowed.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert found == []
