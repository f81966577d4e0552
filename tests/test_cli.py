"""`fastcam demo` end to end on the bundled model and real photos."""
from PIL import Image

from fastcam.cli import main


def test_demo_writes_grid_and_prints_classes(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--methods", "gradcam,cam"]) == 0
    printed = capsys.readouterr().out
    assert "chelsea" in printed and "espresso" in printed
    path = tmp_path / "demo_grid.png"
    assert str(path.resolve()) in printed
    with Image.open(path) as im:
        w, h = im.size
    assert h > w            # 6 rows of photos, 3 columns


def test_demo_rejects_unknown_method(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--methods", "nope"]) == 2
    assert "unknown method" in capsys.readouterr().err
