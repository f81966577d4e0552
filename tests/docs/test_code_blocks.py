"""Every code block of the README and the docs runs (issue 29, item 3).

The fenced ``python`` blocks of a page run in order in one namespace, and the
``bash`` blocks' commands (each a ``fastcam ...`` line) run through the
command line's ``main`` in the same process, all in a temporary folder that
holds a few input files (``cat.jpg``, ``dog.png``, ``images/``, ``tests/data/``).
A block that cannot run here is marked on the line before its fence with
``<!-- not run: REASON -->``: installs, cluster launches, a GPU, downloads,
runs of many minutes.
"""
from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
MARKER = re.compile(r"^<!-- (not run): (.+) -->$")
FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass
class Block:
    page: Path
    line: int            # 1-based line of the opening fence
    lang: str
    code: str
    mark: str | None     # "not run" | None
    reason: str | None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.lang in ("python", "bash") and self.mark is None


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page, each with the marker on the line before its fence."""
    lines = page.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        opened = FENCE.match(lines[i])
        if not opened:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].rstrip() == "```"), None)
        assert end is not None, f"{page.relative_to(ROOT)}:{i + 1}: unclosed code fence"
        mark = MARKER.match(lines[i - 1].strip()) if i > 0 else None
        out.append(Block(page, i + 1, opened.group(1), "\n".join(lines[i + 1:end]) + "\n",
                         mark.group(1) if mark else None, mark.group(2) if mark else None))
        i = end + 1
    return out


ALL = [b for p in PAGES for b in blocks(p)]


def commands(block: Block) -> list[list[str]]:
    """The commands of a bash block: continuation lines joined, comments dropped."""
    joined = block.code.replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        argv = shlex.split(line, comments=True)
        if argv:
            out.append(argv)
    return out


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A folder with the inputs the pages name: two photos, a folder of them, the labels."""
    from PIL import Image

    from fastcam.data import photo_array

    images = tmp_path / "images"
    images.mkdir()
    for name, photo in (("cat.jpg", "chelsea"), ("dog.png", "coffee")):
        im = Image.fromarray(photo_array(photo))
        im.thumbnail((320, 320))
        im.save(tmp_path / name)
        im.save(images / name)
    (tmp_path / "tests" / "data").mkdir(parents=True)
    for name in ("photos_labels.csv", "photos_boxes.csv"):
        shutil.copy(ROOT / "tests" / "data" / name, tmp_path / "tests" / "data" / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_bash(block: Block) -> None:
    from fastcam.apps.cli import main

    for argv in commands(block):
        assert argv[0] == "fastcam", (
            f"{block.where}: `{' '.join(argv)}` is not a fastcam command; mark the block "
            "<!-- not run: REASON --> if it cannot run here")
        try:
            code = main(argv[1:])
        except SystemExit as exit_:
            code = exit_.code
        assert code in (0, None), f"{block.where}: `{' '.join(argv)}` exited with {code}"


RUN_PAGES = sorted({b.page for b in ALL if b.runs}, key=str)


@pytest.mark.parametrize("page", RUN_PAGES, ids=[str(p.relative_to(ROOT)) for p in RUN_PAGES])
def test_page_code_blocks_run(page, workdir):
    namespace: dict = {"__name__": "__docs__"}
    for block in (b for b in ALL if b.page == page and b.runs):
        if block.lang == "python":
            exec(compile(block.code, block.where, "exec"), namespace)
        else:
            run_bash(block)


def test_markers_sit_on_runnable_blocks_and_say_why():
    text_markers = sum(len(re.findall(r"<!-- not run:", p.read_text(encoding="utf-8")))
                       for p in PAGES)
    marked = [b for b in ALL if b.mark]
    # a marker that is not on the line before a python/bash fence would silently mark nothing
    assert len(marked) == text_markers, "a not run marker is not directly above a code fence"
    for b in marked:
        assert b.lang in ("python", "bash"), f"{b.where}: only python and bash blocks run, no marker needed"
        assert len(b.reason.strip()) >= 10, f"{b.where}: say why the block does not run"
        if b.lang == "python":           # not run, but at least valid Python
            compile(b.code, b.where, "exec")
        else:                            # and the shell lines parse
            commands(b)


def test_every_block_is_run_or_marked():
    """Every python/bash block runs unless marked; code blocks in other languages are
    output or file contents, never commands to type."""
    for b in ALL:
        if b.lang in ("", "sh", "shell", "console", "py", "python3"):
            pytest.fail(f"{b.where}: tag the block python, bash or text (got {b.lang or 'none'!r})")
    runnable = [b for b in ALL if b.lang in ("python", "bash")]
    counts = {m: sum(b.mark == m for b in runnable) for m in ("not run", None)}
    print(f"code blocks: {counts[None]} run, {counts['not run']} not run")
    assert counts[None] >= 10
