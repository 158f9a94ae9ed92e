"""The kernel file format, checked field by field in plain Python: what a bad file gets is one
line naming the file and the field. Nothing here needs NumPy, so ``convfilter list`` can read
every kernel file without it."""

from __future__ import annotations

import math
import unicodedata

from .errors import KernelError
from .generators import GENERATORS, MAX_SIZE, is_number, shown
from .options import ALPHAS, COMBINES, MIXES, PADDING_MODES, RANGES, int_pair

FIELDS = [
    "name",
    "summary",
    "weights",
    "generator",
    "scale",
    "divisor",
    "normalize",
    "bias",
    "mix",
    "padding",
    "stride",
    "dilation",
    "flip",
    "combine",
    "range",
    "alpha",
]


def parse_weights(value: object, where: str) -> list:
    """Check that ``value`` is a 2-, 3- or 4-D nested list of finite numbers with no ragged rows."""
    depth, probe = 0, value
    while isinstance(probe, list) and probe:
        depth, probe = depth + 1, probe[0]
    if not isinstance(value, list) or not value or depth not in (2, 3, 4):
        raise KernelError(
            f"{where}: 'weights' must be a non-empty 2-D list of rows of numbers "
            "(or 3-D for a bank, 4-D for [O][C/g][kh][kw])"
        )
    shape = _check_nested(value, depth, where, _LEVELS[depth])
    if shape[-2] > MAX_SIZE or shape[-1] > MAX_SIZE:
        raise KernelError(f"{where}: 'weights' is {shape[-2]}×{shape[-1]}, larger than {MAX_SIZE}×{MAX_SIZE}")
    return value


# what each nesting level of a weight is called in messages, outermost first
_LEVELS = {2: ("row",), 3: ("kernel", "row"), 4: ("output", "input", "row")}


def _check_nested(value: list, depth: int, where: str, levels: tuple[str, ...], path: str = "") -> tuple[int, ...]:
    """Return the shape of a nested list of numbers, or raise naming the first bad place."""
    if depth == 1:
        for column, item in enumerate(value, 1):
            if not is_number(item):
                raise KernelError(
                    f"{where}: 'weights'{path} item {column} is {shown(item)}, not a finite number{_text_hint(item)}"
                )
        return (len(value),)
    level = levels[-(depth - 1)]
    shapes = []
    for i, item in enumerate(value, 1):
        if not isinstance(item, list) or not item:
            raise KernelError(f"{where}: 'weights'{path} {level} {i} must be a non-empty list")
        shapes.append(_check_nested(item, depth - 1, where, levels, f"{path} {level} {i},".rstrip(",")))
    for i, shape in enumerate(shapes[1:], 2):
        if shape != shapes[0]:
            if depth == 2:
                raise KernelError(f"{where}: 'weights'{path} row {i} has {shape[0]} numbers, row 1 has {shapes[0][0]}")
            raise KernelError(
                f"{where}: 'weights'{path} {level} {i} has shape {list(shape)}, {level} 1 has {list(shapes[0])}"
            )
    return (len(value), *shapes[0])


def _text_hint(value: object) -> str:
    """YAML reads 1e300 (no dot) as text: say so, and how to write it as a number."""
    try:
        number = float(value) if isinstance(value, str) and len(value) <= 40 else None
    except ValueError:
        number = None
    if number is None or not math.isfinite(number):
        return ""
    return f" (YAML reads {value} as text; write it with a dot: {number:.1e})"


def number_field(data: dict, field: str, where: str, default: float) -> float:
    """The field as a float, refused unless it is a finite number."""
    value = data.get(field, default)
    if not is_number(value):
        raise KernelError(f"{where}: {field!r} must be a finite number, got {shown(value)}{_text_hint(value)}")
    return float(value)


def bool_field(data: dict, field: str, where: str, default: bool) -> bool:
    """The field, refused unless it is true or false."""
    value = data.get(field, default)
    if not isinstance(value, bool):
        raise KernelError(f"{where}: {field!r} must be true or false, got {shown(value)}")
    return value


def string_field(data: dict, field: str, where: str, default: str) -> str:
    """The field, refused unless it is a string of one printable line (a name or summary is
    printed: a control character, a line break or a lone surrogate would break the output)."""
    value = data.get(field, default)
    if not isinstance(value, str):
        raise KernelError(f"{where}: {field!r} must be a string, got {shown(value)}")
    if field in data:
        bad = next((c for c in value if unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp")), None)
        if bad is not None:
            raise KernelError(f"{where}: {field!r} must be one line of printable text; it holds {bad!r}")
    return value


def choice_field(data: dict, field: str, choices: tuple[str, ...], where: str, default: str) -> str:
    """The field, refused unless it is one of ``choices``."""
    value = data.get(field, default)
    if value not in choices:
        raise KernelError(f"{where}: {field!r} is {shown(value)}; use one of {', '.join(choices)}")
    return value


def pair_field(value: object, field: str, where: str) -> tuple[int, int]:
    """``(y, x)`` from a whole number ≥ 1 or a pair of them (``stride``, ``dilation``)."""
    pair = int_pair(value, single=False)
    if pair is None or min(pair) < 1:
        raise KernelError(f"{where}: {field} must be a whole number ≥ 1 or a pair [y, x] of them, got {shown(value)}")
    return pair


def default_mix(data: dict) -> str:
    """The mix of a kernel file without one: depthwise, except that a 4-D weight infers its groups
    from the image's channels, as a ``.npy`` weight does."""
    return "infer" if len(_shape(data.get("weights"))) == 4 else "depthwise"


def mix_field(value: object, where: str) -> str | int:
    """``depthwise``, ``dense``, or the N of ``{groups: N}``."""
    if value in MIXES:
        return value
    if isinstance(value, dict) and set(value) == {"groups"}:
        groups = value["groups"]
        if isinstance(groups, int) and not isinstance(groups, bool) and groups >= 1:
            return groups
    raise KernelError(f"{where}: 'mix' is {shown(value)}; use depthwise, dense or {{groups: N}} with N ≥ 1")


def check_mapping(data: object, stem: str, where: str, builtin: bool = False) -> dict:
    """Check every field of a kernel mapping (the weights' shape and numbers, the generator's
    type and parameters, every setting) and return the settings, defaults filled in:
    ``name, summary, mix, bias, padding, stride, dilation, flip, combine, range, alpha`` and the
    ``scale``, ``divisor`` and ``normalize`` that turn the weights into the final ones."""
    if data is None:
        raise KernelError(f"{where}: the file is empty; a kernel needs at least 'weights' or 'generator'")
    if not isinstance(data, dict):
        raise KernelError(f"{where}: must be a mapping of fields (weights: …), not a {type(data).__name__}")
    unknown = [k for k in data if k not in FIELDS]
    if unknown:
        raise KernelError(f"{where}: unknown field {shown(unknown[0])}; the fields are {', '.join(FIELDS)}")
    name = string_field(data, "name", where, stem)
    if builtin:
        if name != stem:
            raise KernelError(f"{where}: 'name' is {shown(name)} but a built-in's name must be its file stem {stem!r}")
        if not data.get("summary"):
            raise KernelError(f"{where}: 'summary' is required for a built-in kernel")
    if ("weights" in data) == ("generator" in data):
        raise KernelError(f"{where}: give exactly one of 'weights' or 'generator'")
    if "weights" in data:
        parse_weights(data["weights"], where)
    else:
        check_generator(data["generator"], where)
    divisor = number_field(data, "divisor", where, 1.0)
    if divisor == 0:
        raise KernelError(f"{where}: 'divisor' must not be 0")
    bias = data.get("bias", 0)
    bias = tuple(bias) if isinstance(bias, list) else (bias,)
    if not bias or not all(is_number(b) for b in bias):
        raise KernelError(f"{where}: 'bias' must be a number or a list of numbers, one per output channel")
    return {
        "name": name,
        "summary": string_field(data, "summary", where, ""),
        # no mix: depthwise, except that a 4-D weight infers its groups from the image, as a .npy does
        "mix": mix_field(data["mix"], where) if "mix" in data else default_mix(data),
        "bias": () if bias == (0,) else tuple(float(b) for b in bias),
        "padding_mode": choice_field(data, "padding", PADDING_MODES, where, "reflect"),
        "stride": pair_field(data.get("stride", 1), "'stride'", where),
        "dilation": pair_field(data.get("dilation", 1), "'dilation'", where),
        "flip": bool_field(data, "flip", where, False),
        "combine": choice_field(data, "combine", COMBINES, where, "none"),
        "range": choice_field(data, "range", RANGES, where, "clip"),
        "alpha": choice_field(data, "alpha", ALPHAS, where, "keep"),
        "scale": number_field(data, "scale", where, 1.0),
        "divisor": divisor,
        "normalize": bool_field(data, "normalize", where, False),
    }


def check_generator(spec: object, where: str) -> dict:
    """Check a ``generator`` mapping and return its parameters, defaults filled in."""
    if not isinstance(spec, dict) or "type" not in spec or set(spec) - {"type", "params"}:
        raise KernelError(f"{where}: 'generator' must be a mapping {{type: NAME, params: {{…}}}}")
    kind = spec["type"]
    if not isinstance(kind, str) or kind not in GENERATORS:  # a list or mapping cannot even be looked up
        raise KernelError(f"{where}: generator type {shown(kind)} is unknown; use one of {', '.join(GENERATORS)}")
    file_params = spec.get("params") or {}
    if not isinstance(file_params, dict):
        raise KernelError(f"{where}: generator 'params' must be a mapping of NAME: VALUE")
    return GENERATORS[kind].resolve(file_params, where)


def describe(data: dict, stem: str) -> dict:
    """What ``convfilter list`` shows of a valid kernel mapping: name, summary, weight shape,
    mix and generator parameters, worked out without computing any weights."""
    if "weights" in data:
        shape = list(_shape(data["weights"]))
        params = {}
    else:
        generator = GENERATORS[data["generator"]["type"]]
        params = generator.resolve(data["generator"].get("params") or {}, stem)
        shape = list(generator.shape(**params))
    mix = data.get("mix", default_mix(data))
    return {
        "name": data.get("name", stem),
        "summary": data.get("summary", ""),
        "shape": shape,
        "mix": f"groups={mix['groups']}" if isinstance(mix, dict) else mix,
        "parameters": params,
    }


def _shape(value: list) -> tuple[int, ...]:
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0]
    return tuple(shape)
