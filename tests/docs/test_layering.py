"""The package's import graph: data flows one way (docs/extending.md, "Layout").

Every module under ``fastcam/`` is parsed with ``ast``; every ``import`` and
``from ... import`` in it — at module level or inside a function — is an edge
from the module's top-level unit (``fastcam.methods.base`` → ``methods``,
``fastcam.api`` → ``api``) to the imported one. A unit may import only units of
a lower layer in :data:`LAYERS`: never one of its own layer, never one above.
That rules out cycles; :func:`test_no_cycles` still reports any cycle by name.

Also here: ``import fastcam`` and ``fastcam --help`` stay light (lazy public names).
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "fastcam"

#: the allowed order, top first: a unit imports only units of a later layer
LAYERS: list[tuple[str, ...]] = [
    ("__main__", "cli"),                              # entry points (cli: the former path of apps.cli)
    ("apps",),                                        # the command line
    ("evaluation",),                                  # the eval harness (reads image lists with generation's)
    ("generation",),                                  # whole datasets
    ("api", "compat", "preflight", "visualize"),      # one-call entry, front-ends, run checks, figures
    ("metrics",),                                     # metrics evaluate methods (the sanity check runs them)
    ("methods",),
    ("perturbation", "quality"),                      # perturbed passes; scores a method optimises (AVX)
    ("models",),                                      # model definitions and their weights
    ("engine", "ops"),
    ("network", "kernels", "backend"),
    ("targets", "inputs", "errors", "progress", "allocator", "_ext", "_version"),   # progress: the bars' plumbing
    ("data",),                                        # bundled photos, ImageNet metadata (normalize presets)
    ("_C",),                                          # the compiled extension
]
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    """Whether ``fastcam.x.y`` names a module or package of the source tree (or the extension)."""
    if dotted == "fastcam._C":
        return True
    rel = Path(*dotted.split(".")[1:]) if "." in dotted else Path()
    base = ROOT / rel
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported fastcam module, line) for every import statement in the file."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "fastcam"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "fastcam":
                continue
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.append((sub if _is_module(sub) else module, node.lineno))
    return found


def _unit(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else "fastcam"


def _edges() -> list[tuple[str, str, str, int, str]]:
    """(from unit, to unit, file, line, imported module) across units."""
    edges = []
    for path in sorted(ROOT.rglob("*.py")):
        src = _unit(_module_name(path))
        for target, line in _imports(path):
            dst = _unit(target)
            if dst != src:
                edges.append((src, dst, str(path.relative_to(ROOT.parent)), line, target))
    return edges


def test_every_unit_has_a_layer():
    units = {_unit(_module_name(p)) for p in ROOT.rglob("*.py")} - {"fastcam"}
    missing = sorted(units - set(RANK))
    assert not missing, f"add {missing} to LAYERS in tests/docs/test_layering.py (and the layout in docs/extending.md)"


def test_imports_go_down_the_layers():
    bad = []
    for src, dst, file, line, target in _edges():
        if src == "fastcam":
            continue                       # the root package: lazy public names (checked below)
        if dst == "fastcam":
            bad.append(f"{file}:{line} imports the root package fastcam (import the defining module)")
        elif src in RANK and dst in RANK and RANK[dst] <= RANK[src]:
            bad.append(f"{file}:{line}: {src} (layer {RANK[src]}) imports {target} "
                       f"({dst}, layer {RANK[dst]}): only lower layers may be imported")
    assert not bad, "\n".join(bad)


def test_no_cycles():
    graph: dict[str, set[str]] = {}
    for src, dst, *_ in _edges():
        graph.setdefault(src, set()).add(dst)
    state: dict[str, int] = {}          # 1: on the path, 2: done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles between packages:\n" + "\n".join(cycles)


def test_the_walker_sees_function_level_imports():
    # the sanity check imports the method registry inside a function: seen, and allowed (metrics > methods)
    edges = {(s, d, f) for s, d, f, _, _ in _edges()}
    assert ("metrics", "methods", "fastcam/metrics/sanity.py") in edges
    assert ("methods", "quality", "fastcam/methods/advise.py") in edges
    assert not any(s == "methods" and d == "metrics" for s, d, _ in edges)


def _run(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120, check=True)
    return out.stdout.strip()


def test_import_fastcam_imports_neither_torch_nor_torchvision():
    loaded = _run("import sys, fastcam; print(sorted(m for m in ('torch', 'torchvision', 'numpy') "
                  "if m in sys.modules))")
    assert loaded == "[]"


#: what ``import fastcam`` and its core names never import: torchvision (and the
#: ``torch._dynamo`` its ``ops`` pull in), the front-ends, the command line, the generator
HEAVY = ("torchvision", "torch._dynamo", "fastcam.compat", "fastcam.apps", "fastcam.cli",
         "fastcam.generation", "fastcam.evaluation", "cv2", "zarr", "piq")


@pytest.mark.parametrize("use", ["", "fastcam.GradCAM, fastcam.explain, fastcam.models.efficientnet_lite0",
                                 "fastcam.data.load_photos(['chelsea'], size=64), fastcam.data.IMAGENET_CLASSES"])
def test_core_names_import_nothing_heavier_than_torch(use):
    code = (f"import sys, fastcam\n{use}\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    assert _run(code) == "[]"


def test_help_imports_no_torch():
    code = ("import sys, contextlib, io\n"
            "from fastcam.apps.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    try:\n"
            "        main(['--help'])\n"
            "    except SystemExit as e:\n"
            "        assert e.code == 0\n"
            "assert all(c in out.getvalue() for c in ('demo', 'generate', 'explain', 'eval', 'photos'))\n"
            "print('torch' in sys.modules)")
    assert _run(code) == "False"


def test_public_names_resolve_lazily():
    import fastcam
    from fastcam import methods

    expected = {"explain", "models", "ops", "set_backend", "get_backend", "use_backend", "__version__",
                "generate", "overlay", "save_overlay", "load_image",
                *(n for n in methods.__all__ if n != "PEER_METHODS")}
    assert set(fastcam.__all__) == expected
    for name in fastcam.__all__:
        assert getattr(fastcam, name) is not None
    assert fastcam.GradCAM is methods.GradCAM and callable(fastcam.generate)
    assert set(fastcam.__all__) <= set(dir(fastcam))
    with pytest.raises(AttributeError):
        fastcam.no_such_name
