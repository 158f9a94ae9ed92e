"""One table of bad inputs, each ending in one line, its exit status and nothing written:
(arguments, exit status, a fragment of the line), run in a folder made by ``make_workdir``.
test_cli.py replays it in process, test_hardening.py through the installed command under a
memory limit; ``digest`` tells whether anything in the folder changed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from conftest import SAMPLES

CORPUS = Path(__file__).parent / "corpus"
CAT = SAMPLES / "cat.jpeg"


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def make_workdir(tmp_path: Path) -> Path:
    """Fill ``tmp_path`` with a copy of the samples, the corpus of nasty files and a few files
    to get wrong; every argument of ``BAD_INPUTS`` is relative to it."""
    (tmp_path / "cat.jpeg").write_bytes(CAT.read_bytes())
    (tmp_path / "camera.png").write_bytes((SAMPLES / "camera.png").read_bytes())
    (tmp_path / "a-file").write_text("a file, not a folder")
    (tmp_path / "bank.yaml").write_text("weights: [[[1, 0, -1]], [[1, 2, 1]]]\ncombine: none\n")
    (tmp_path / "big.yaml").write_text("weights: [[1]]\n" + "#" * (1 << 20))
    (tmp_path / "huge.yaml").write_text("weights: [" + ", ".join(["[" + ", ".join(["0"] * 256) + "]"] * 2) + "]\n")
    (tmp_path / "zero-sum.yaml").write_text("weights: [[1, -1]]\nnormalize: true\n")
    (tmp_path / "divisor.yaml").write_text("weights: [[1]]\ndivisor: 0\n")
    (tmp_path / "unknown.yaml").write_text("wieghts: [[1]]\n")
    (tmp_path / "ragged.yaml").write_text("weights: [[1, 2], [3]]\n")
    (tmp_path / "strings.yaml").write_text("weights: [[a, b]]\n")
    (tmp_path / "bools.yaml").write_text("weights: [[true, false]]\n")
    (tmp_path / "empty.yaml").write_text("")
    digits = "9" * 400  # past float's range; 5000 digits are past Python's int conversion limit too
    (tmp_path / "int400.yaml").write_text(f"weights: [[-{digits}]]\n")
    (tmp_path / "bias400.yaml").write_text(f"weights: [[1]]\nbias: {digits}\n")
    (tmp_path / "divisor400.yaml").write_text(f"weights: [[1]]\ndivisor: {digits}\n")
    (tmp_path / "scale5000.yaml").write_text(f"weights: [[1]]\nscale: {'9' * 5000}\n")
    (tmp_path / "sigma400.yaml").write_text(f"generator: {{type: gaussian, params: {{sigma: {digits}}}}}\n")
    (tmp_path / "size5000.yaml").write_text(f"generator: {{type: box, params: {{size: -{'9' * 5000}}}}}\n")
    (tmp_path / "float400.yaml").write_text("weights: [[1, -1.0e+400]]\n")
    (tmp_path / "weight-1e39.yaml").write_text("weights: [[1.0e+39]]\n")
    (tmp_path / "bias-1e39.yaml").write_text("weights: [[1]]\nbias: [0, 1.0e+39, 0]\n")
    (tmp_path / "type-list.yaml").write_text("generator: {type: [gaussian]}\n")
    (tmp_path / "key-list.yaml").write_text("weights: [[1]]\n[a]: 1\n")
    (tmp_path / "key-mapping.yaml").write_text("generator: {type: gaussian, params: {{a: 1}: 2}}\n")
    (tmp_path / "param-keys.yaml").write_text("generator: {type: gaussian, params: {1: 1, null: 2}}\n")
    (tmp_path / "summary-escape.yaml").write_text('weights: [[1]]\nsummary: "red \\e[31m"\n')
    (tmp_path / "folder.yaml").mkdir()
    import io

    import numpy as np

    for name, shape in (("giant.npy", (1 << 40, 1 << 40)), ("giant4.npy", (1 << 20, 1 << 20, 3, 3)),
                        ("bool-shape.npy", (True, True))):  # fmt: skip
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
        (tmp_path / name).write_bytes(header.getvalue() + bytes(16))
    np.save(tmp_path / "bool.npy", np.eye(3, dtype=bool))
    np.save(tmp_path / "complex.npy", np.eye(3, dtype=complex))
    np.save(tmp_path / "scalar.npy", np.array(1.0))
    with open(tmp_path / "version3.npy", "wb") as stream:
        np.lib.format.write_array(stream, np.eye(3, dtype=np.float32), version=(3, 0))
    (tmp_path / "out-existing.png").write_bytes(b"old output")
    (tmp_path / "corpus-folder").mkdir()
    (tmp_path / "corpus-folder" / "x.png").write_bytes((SAMPLES / "logo.png").read_bytes())
    for name in os.listdir(CORPUS):
        (tmp_path / name).write_bytes((CORPUS / name).read_bytes())
    return tmp_path


# (arguments, exit status, a fragment of the one line) — {c} is the cat in the work folder
BAD_INPUTS = [
    # images
    (["edge", "empty.png", "-o", "o.png"], 1, "is empty, no image data"),
    (["edge", "garbage.png", "-o", "o.png"], 1, "not an image that can be decoded"),
    (["edge", "text.jpg", "-o", "o.png"], 1, "not an image that can be decoded"),
    (["edge", "truncated.jpg", "-o", "o.png"], 1, "the JPEG file is cut off; --allow-truncated"),
    (["edge", "truncated.png", "-o", "o.png"], 1, "the PNG file is cut off"),
    (["edge", "truncated.webp", "-o", "o.png"], 1, "the WEBP file is cut off"),
    (["edge", "bomb-60000.png", "-o", "o.png"], 1, "60000×60000 is 3600 MP, over the limit of 128 MP"),
    (["edge", "bomb-sof.jpg", "-o", "o.png"], 1, "65500×65500 is 4290 MP"),
    (["edge", "bomb.gif", "-o", "o.png"], 1, "65535×65535"),
    (["edge", "bomb.bmp", "-o", "o.png"], 1, "40000×40000"),
    (["edge", "cat.jpeg", "-o", "o.png", "--max-pixels", "1000"], 1, "over the limit of 0.001 MP"),
    (["edge", "png-bad-crc.png", "-o", "o.png"], 1, "not an image that can be decoded"),
    (["edge", "missing.png", "-o", "o.png"], 1, "input missing.png: no such file"),
    (["edge", "a-file/x.png", "-o", "o.png"], 1, "a-file/x.png"),
    # kernel files
    (["syntax.yaml", "cat.jpeg", "-o", "o.png"], 2, "line 2, column 1"),
    (["not-a-mapping.yaml", "cat.jpeg", "-o", "o.png"], 2, "must be a mapping of fields"),
    (["empty.yaml", "cat.jpeg", "-o", "o.png"], 2, "the file is empty"),
    (["unknown.yaml", "cat.jpeg", "-o", "o.png"], 2, "unknown field 'wieghts'"),
    (["ragged.yaml", "cat.jpeg", "-o", "o.png"], 2, "'weights' row 2 has 1 numbers, row 1 has 2"),
    (["strings.yaml", "cat.jpeg", "-o", "o.png"], 2, "item 1 is 'a', not a finite number"),
    (["bools.yaml", "cat.jpeg", "-o", "o.png"], 2, "item 1 is True, not a finite number"),
    (["nan.yaml", "cat.jpeg", "-o", "o.png"], 2, "item 2 is nan, not a finite number"),
    (["divisor.yaml", "cat.jpeg", "-o", "o.png"], 2, "'divisor' must not be 0"),
    (["zero-sum.yaml", "cat.jpeg", "-o", "o.png"], 2, "'normalize' divides by the sum of the weights, which is 0"),
    (["alias-bomb.yaml", "cat.jpeg", "-o", "o.png"], 2, "anchors and aliases (&, *) are not allowed"),
    (["deep.yaml", "cat.jpeg", "-o", "o.png"], 2, "nested deeper than 16 levels"),
    (["duplicate-keys.yaml", "cat.jpeg", "-o", "o.png"], 2, "duplicate key 'weights'"),
    (["big.yaml", "cat.jpeg", "-o", "o.png"], 2, "larger than 1 MiB"),
    (["huge.yaml", "cat.jpeg", "-o", "o.png"], 2, "'weights' is 2×256, larger than 255×255"),
    (["python-tag.yaml", "cat.jpeg", "-o", "o.png"], 2, "could not determine a constructor"),
    (["binary.yaml", "cat.jpeg", "-o", "o.png"], 2, "kernel file binary.yaml"),
    (["corrupt.npy", "cat.jpeg", "-o", "o.png"], 2, "not a readable .npy array"),
    (["object.npy", "cat.jpeg", "-o", "o.png"], 2, "not a readable .npy array"),
    (["rank3.npy", "cat.jpeg", "-o", "o.png"], 2, "has shape (2, 3, 3)"),
    (["strings.npy", "cat.jpeg", "-o", "o.png"], 2, "holds <U1 values; a kernel holds integers or floats"),
    (["nosuch", "cat.jpeg", "-o", "o.png"], 2, "unknown kernel 'nosuch'"),
    (["int400.yaml", "cat.jpeg", "-o", "o.png"], 2, "column 12: the number -99999999999…999999999999 (401 characters)"),
    (["bias400.yaml", "cat.jpeg", "-o", "o.png"], 2, "bias400.yaml: line 2, column 7: the number 999999999999…"),
    (["divisor400.yaml", "cat.jpeg", "-o", "o.png"], 2, "divisor400.yaml: line 2, column 10: the number 99999"),
    (["scale5000.yaml", "cat.jpeg", "-o", "o.png"], 2, "line 2, column 8: a number written with 5000 characters"),
    (["sigma400.yaml", "cat.jpeg", "-o", "o.png"], 2, "sigma400.yaml: line 1, column 45: the number 99999"),
    (["size5000.yaml", "cat.jpeg", "-o", "o.png"], 2, "line 1, column 39: a number written with 5001 characters"),
    (["float400.yaml", "cat.jpeg", "-o", "o.png"], 2, "column 15: the number -1.0e+400 is beyond float's range"),
    (["weight-1e39.yaml", "cat.jpeg", "-o", "o.png"], 2, "the weights must be finite numbers within float32's range"),
    (["bias-1e39.yaml", "cat.jpeg", "-o", "o.png"], 2, "'bias' must be finite numbers within float32's range"),
    (["type-list.yaml", "cat.jpeg", "-o", "o.png"], 2, "generator type ['gaussian'] is unknown; use one of gaussian"),
    (["key-list.yaml", "cat.jpeg", "-o", "o.png"], 2, "line 2, column 1: a list cannot be a key; keys are names"),
    (["key-mapping.yaml", "cat.jpeg", "-o", "o.png"], 2, "line 1, column 38: a dict cannot be a key"),
    (["param-keys.yaml", "cat.jpeg", "-o", "o.png"], 2, "generator gaussian takes no parameter 1; it takes sigma"),
    (["summary-escape.yaml", "cat.jpeg", "-o", "o.png"], 2, "'summary' must be one line of printable text"),
    (["folder.yaml", "cat.jpeg", "-o", "o.png"], 2, "kernel file folder.yaml: not a file"),
    (["/proc/self/pagemap", "cat.jpeg", "-o", "o.png"], 2, "kernel file /proc/self/pagemap: larger than 1 MiB"),
    (["/proc/self/mem", "cat.jpeg", "-o", "o.png"], 2, "kernel file /proc/self/mem: cannot read (Input/output error)"),
    (["y" * 300 + ".yaml", "cat.jpeg", "-o", "o.png"], 2, "cannot read (File name too long)"),
    (["giant.npy", "cat.jpeg", "-o", "o.png"], 2, "giant.npy: 1099511627776×1099511627776 is larger than 255×255"),
    (["giant4.npy", "cat.jpeg", "-o", "o.png"], 2, "(1048576, 1048576, 3, 3) of float32 needs more than the 16"),
    (["bool-shape.npy", "cat.jpeg", "-o", "o.png"], 2, "not a readable .npy array (shape is not valid: (True, True))"),
    (["bool.npy", "cat.jpeg", "-o", "o.png"], 2, "holds bool values; a kernel holds integers or floats"),
    (["complex.npy", "cat.jpeg", "-o", "o.png"], 2, "holds complex128 values; a kernel holds integers or floats"),
    (["scalar.npy", "cat.jpeg", "-o", "o.png"], 2, "has shape (); give a 2-D [kh, kw] or 4-D [O, C/g, kh, kw] array"),
    (["version3.npy", "cat.jpeg", "-o", "o.png"], 2, "not a readable .npy array (format version 3.0; 1.0 and 2.0"),
    (["gaussian", "-p", "size=" + "9" * 400, "cat.jpeg", "-o", "o.png"], 2, "got '99999999999…99999999999' (402 char"),
    (["box", "-p", "size=1e300", "cat.jpeg", "-o", "o.png"], 2, "size must be 1 to 255, got an integer of about 300"),
    (["gaussian", "-p", "sigma=nan", "cat.jpeg", "-o", "o.png"], 2, "must be a number > 0 and ≤ 42.3333, got 'nan'"),
    (["gaussian", "-p", "sigma=-inf", "cat.jpeg", "-o", "o.png"], 2, "got '-inf'"),
    (["gaussian", "-p", "sigma=-0", "cat.jpeg", "-o", "o.png"], 2, "sigma must be > 0 and ≤ 42.3333, got -0.0"),
    (["gaussian", "-p", "sigma=\u0661", "cat.jpeg", "-o", "o.png"], 2, "must be a number > 0 and ≤ 42.3333, got '"),
    (["dog", "-p", "sigma1=1e-200", "cat.jpeg", "-o", "o.png"], 2, "dog.yaml: the weights must be finite numbers"),
    (["unsharp", "-p", "sigma=1e-200", "cat.jpeg", "-o", "o.png"], 2, "unsharp.yaml: the weights must be finite"),
    (["show", "edge", "--channels", "100000", "--plot", "w.png"], 2, "layer would hold 90000000000 weights, more"),
    (["show", "edge", "--channels", str((1 << 40) + 1)], 2, "is not in the range 1<=x<=1099511627776"),
    # options
    (["edge", "cat.jpeg", "-o", "o.png", "--groups", "0"], 2, "0 is not in the range x>=1"),
    (["edge", "cat.jpeg", "-o", "o.png", "--groups", "2"], 2, "try one of 1, 3"),
    (["edge", "cat.jpeg", "-o", "o.png", "--stride", "0"], 2, "0 is not in the range x>=1"),
    (["edge", "cat.jpeg", "-o", "o.png", "--dilation", "-1"], 2, "-1 is not in the range x>=1"),
    (["edge", "cat.jpeg", "-o", "o.png", "--padding", "mirror"], 2, "'mirror' is not one of"),
    (["edge", "cat.jpeg", "-o", "o.png", "--range", "wrap"], 2, "'wrap' is not one of"),
    (["edge", "cat.jpeg", "-o", "o.png", "--quality", "101"], 2, "101 is not in the range 0<=x<=100"),
    (["edge", "cat.jpeg", "-o", "o.gif"], 2, "unknown extension .gif"),
    (["gaussian", "-p", "sigma", "cat.jpeg", "-o", "o.png"], 2, "expected NAME=VALUE, got 'sigma'"),
    (["gaussian", "-p", "radius=2", "cat.jpeg", "-o", "o.png"], 2, "takes no parameter 'radius'"),
    (["gaussian", "-p", "sigma=-1", "cat.jpeg", "-o", "o.png"], 2, "parameter sigma must be > 0"),
    (["gaussian", "-p", "sigma=1e-200", "cat.jpeg", "-o", "o.png"], 2, "the weights must be finite numbers"),
    (["bank.yaml", "cat.jpeg", "-o", "o.png"], 2, "a result with 6 channels cannot be written as PNG"),
    (["edge", "cat.jpeg", "-o", "o.png", "--dense", "--groups", "3"], 2, "exclude each other"),
    (["edge", "cat.jpeg", "-o", "o.png", "--bogus"], 2, "No such option '--bogus'"),
    (["edge", "cat.jpeg", "-o", "o.png", "--format", "gif"], 2, "option --format: unknown format 'gif'"),
    # outputs
    (["edge", "corpus-folder", "-o", "o.png"], 2, "several inputs, or a folder, need -o FOLDER; o.png names a file"),
    (["edge", "cat.jpeg", "text.jpg", "-o", "o.png"], 2, "need -o FOLDER; o.png names a file"),
    (["edge", "cat.jpeg", "camera.png", "-o", "-"], 2, "several inputs, or a folder, need -o FOLDER for the outputs"),
    (["edge", "", "-o", "out/"], 2, "input '': an empty name; give a file or a folder (. for the current one)"),
    (["edge", "cat.jpeg", "-o", "no/such/folder/o.png"], 2, "the folder no/such/folder does not exist"),
    (["edge", "cat.jpeg", "-o", "a-file/o.png"], 2, "the folder a-file does not exist"),
    (["edge", "cat.jpeg", "-o", "cat.jpeg"], 2, "is the input; writing over an input is refused"),
    # streams
    (["edge", "-", "-o", "o.png"], 1, "input <stdin>: is empty"),
    (["edge", "-", "-o", "o.png", "STDIN:garbage"], 1, "input <stdin>: not an image that can be decoded"),
]
