"""The README (≤ 200 lines: what fastcam is, the gallery, set-up, the start, the three
uses, the headline benchmarks, citing) and the docs site around it: the README's two
set-up commands exist and CI runs the test command verbatim; every link resolves; the
headline rows are the docs' rows; every public name has an API entry; every page is in
the site's navigation."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = ROOT / "docs"


def _gallery():
    """docs/gallery.py, the script that renders the gallery, as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fastcam_docs_gallery", DOCS / "gallery.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _section(text, heading):
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def _commands():
    return re.findall(r"```bash\n(.+?)\n```", _section(README, "Set up"))


def test_two_setup_commands():
    cmds = _commands()
    assert len(cmds) == 2
    assert "fastcam demo" in cmds[0]
    assert "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _commands()[1] in ci


def test_ci_builds_the_docs_strictly():
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^[^#\n]*mkdocs build --strict", ci, re.M)


def test_readme_is_short_and_has_its_sections():
    assert len(README.splitlines()) <= 200
    headings = re.findall(r"^## (.+)$", README, re.M)
    for want in ("Set up", "Start", "Three uses", "Benchmarks", "Citing"):
        assert any(h.startswith(want) for h in headings), (want, headings)


def test_readme_links_resolve():
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if target.startswith("http"):
            continue
        assert (ROOT / target).is_file(), f"README links to {target}, which does not exist"


def test_gallery_images_exist_and_are_small():
    from PIL import Image

    FAMILIES = _gallery().FAMILIES
    stems = ["gallery", *(f"gallery_{f}" for f in FAMILIES)]
    for stem in stems:
        path = DOCS / "images" / f"{stem}.png"
        assert path.is_file(), f"{path} missing: run python docs/gallery.py"
        assert path.stat().st_size <= 300_000, (path, path.stat().st_size)
        with Image.open(path) as im:
            assert im.width > 200 and im.height > 100
        pages = list((DOCS).rglob("*.md")) if stem != "gallery" else [DOCS / "index.md"]
        assert any(f"images/{stem}.png" in p.read_text(encoding="utf-8") for p in pages), stem
    assert "docs/images/gallery.png" in README


def test_gallery_covers_every_method():
    import fastcam.methods
    gallery = _gallery()
    FAMILIES, NOT_RENDERED = gallery.FAMILIES, gallery.NOT_RENDERED

    drawn = {m for ms in FAMILIES.values() for m in ms} | set(NOT_RENDERED)
    classes = {fastcam.methods.METHODS[m] for m in drawn}
    assert classes == set(fastcam.methods.METHODS.values())


def test_headline_benchmark_rows_are_the_docs_rows():
    rows = [ln for ln in _section(README, "Benchmarks").splitlines() if ln.startswith("| ") and "---" not in ln]
    assert len(rows) >= 5
    bench = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    header, *data = rows
    for row in data:
        cells = [c.strip() for c in row.strip("|").split("|")]
        # the same method, fastcam's seconds and speed-ups as a row of the detailed tables
        found = [ln for ln in bench.splitlines() if ln.startswith(f"| {cells[0]} |")]
        assert found, f"README headline row not in docs/benchmarks.md: {cells[0]}"
        for value in (cells[1], cells[2], cells[-2], cells[-1]):
            assert value in found[0], (cells[0], value, found[0])


def _documented():
    text = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.rglob("*.md"))
    return set(re.findall(r"^::: ([\w.]+)$", text, re.M))


def test_every_public_name_has_an_api_entry():
    import importlib

    import fastcam

    documented = _documented()
    for name in fastcam.__all__:
        if name == "__version__":
            assert "__version__" in (DOCS / "api.md").read_text(encoding="utf-8")
            continue
        obj = getattr(fastcam, name)
        if isinstance(obj, type(fastcam)):           # a subpackage: documented whole
            assert obj.__name__ in documented, name
            continue
        path = f"{getattr(obj, '__module__', 'fastcam.methods')}.{getattr(obj, '__qualname__', name)}"
        if name == "METHODS":
            path = "fastcam.methods.METHODS"
        module, _, attr = path.rpartition(".")
        assert getattr(importlib.import_module(module), attr) is obj
        if path in documented:
            continue
        # or a package above it is documented whole and exports it
        parts = module.split(".")
        ancestors = [".".join(parts[:i]) for i in range(len(parts), 1, -1)]
        assert any(a in documented and attr in getattr(importlib.import_module(a), "__all__", ())
                   and getattr(importlib.import_module(a), attr) is obj for a in ancestors), (
            f"fastcam.{name} ({path}) has no ::: entry in docs/")


def test_every_page_is_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in DOCS.rglob("*.md"):
        rel = page.relative_to(DOCS).as_posix()
        assert re.search(rf":\s+{re.escape(rel)}\s*$", nav, re.M), f"{rel} is not in mkdocs.yml's nav"


@pytest.mark.parametrize("stale", [
    "(6, 3, 224, 224)",
    "Ablation-CAM is not a fastcam method",
    "being added on another branch",
])
def test_stale_lines_are_gone(stale):
    for page in [ROOT / "README.md", *DOCS.rglob("*.md")]:
        assert stale not in page.read_text(encoding="utf-8"), (page, stale)


def test_method_count_is_the_registry_count():
    import fastcam.methods

    n = len(set(fastcam.methods.METHODS.values()))
    for page in (ROOT / "README.md", DOCS / "index.md"):
        found = re.search(r"\((\d+) in\s+all", page.read_text(encoding="utf-8"))
        assert found and int(found.group(1)) == n, (page, n)
    assert (DOCS / "methods" / "index.md").read_text(encoding="utf-8").startswith(f"# Methods\n\n{n} methods")
