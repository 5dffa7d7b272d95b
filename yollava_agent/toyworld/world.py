"""The toy world: objects, scenes, the personal subjects, and a fast numpy renderer.

An object's *look* is a shape, a colour word, a shade, a pattern, a pattern style and a rim. The
world's language names shape, colour and pattern only ("a blue striped star"); every colour word
covers two clearly different shades (navy and sky blue are both "blue"), every pattern two styles
(horizontal or vertical stripes, small or big dots, fine or coarse checks), and an object has a
thin rim or none. So language narrows a look down to eight, never to one: what a personal subject
needs to be. The twenty subjects come in five groups of four that share their words (world 0's are
fixed; any other world seed draws five groups of its own, for a benchmark on subjects never used
while developing); two subjects of a group differ in two unnamed attributes, and the four other
looks with the same words (never a subject, but in the negative pool and among the distractors)
differ from three subjects in one.

A scene is one to three objects on a textured background, each at a named place of a 3x3 grid and
of a named size. Photos are 64x64 RGB, rendered at twice the size and averaged down (anti-aliased),
with per-photo sensor noise, in about a millisecond each. Everything is drawn from a
`numpy.random.Generator`, so a seed fixes every photo.

Not modelled: occlusion (objects never overlap), lighting, perspective, or more than three objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

IMAGE_SIZE = 64
_SUPERSAMPLE = 2

SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond")
COLOURS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "red": ((225, 30, 35), (150, 15, 65)),
    "green": ((45, 185, 45), (15, 110, 75)),
    "blue": ((35, 85, 230), (75, 195, 245)),
    "yellow": ((245, 225, 40), (205, 165, 10)),
    "purple": ((135, 55, 205), (215, 95, 215)),
    "orange": ((250, 140, 25), (185, 90, 40)),
}
"""Each colour word's two shades: the world's language never says which one."""
PATTERNS = ("plain", "striped", "dotted", "checked")
PATTERN_NOUNS = {"plain": "no pattern", "striped": "stripes", "dotted": "dots", "checked": "checks"}
SIZES = {"small": (5.5, 7.0), "big": (9.0, 11.5)}
"""Radius ranges in pixels of a 64-px photo."""
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "sand": (225, 205, 160),
    "stone": (125, 125, 130),
    "night": (25, 28, 50),
    "paper": (240, 240, 235),
    "wood": (120, 80, 50),
}
PLACES = (
    "top left",
    "top",
    "top right",
    "left",
    "middle",
    "right",
    "bottom left",
    "bottom",
    "bottom right",
)
"""The 3x3 grid's cells, row by row, as the language names them."""
_LIGHT = (245, 245, 245)
_DARK = (35, 35, 35)


@dataclass(frozen=True)
class Look:
    """What an object looks like, apart from its size and place."""

    shape: str
    colour: str
    shade: int
    """0 or 1: which of the colour word's two shades (never named)."""
    pattern: str
    style: int
    """0 or 1: which style of the pattern (never named; always 0 for plain)."""
    rim: int = 0
    """1: a thin rim in the pattern colour (never named)."""

    def __post_init__(self) -> None:
        if self.shape not in SHAPES or self.colour not in COLOURS or self.pattern not in PATTERNS:
            msg = f"Unknown look {self}: shapes {SHAPES}, colours {tuple(COLOURS)}, patterns {PATTERNS}."
            raise ValueError(msg)
        if self.shade not in (0, 1) or self.style not in (0, 1) or self.rim not in (0, 1):
            msg = f"A look's shade, style and rim are 0 or 1, got {self}."
            raise ValueError(msg)
        if self.pattern == "plain" and self.style != 0:
            msg = f"A plain look has no pattern style, got {self}."
            raise ValueError(msg)

    @property
    def words(self) -> str:
        """The look as the language says it: 'blue striped star' (shade, style and rim are lost)."""
        return f"{self.colour} {self.pattern} {self.shape}"

    def rgb(self) -> tuple[int, int, int]:
        return COLOURS[self.colour][self.shade]

    def pattern_rgb(self) -> tuple[int, int, int]:
        r, g, b = self.rgb()
        return _DARK if 0.3 * r + 0.59 * g + 0.11 * b >= 140 else _LIGHT


@dataclass(frozen=True)
class Placed:
    """An object in a scene: its look, size word, radius and centre (pixels)."""

    look: Look
    size: str
    radius: float
    x: float
    y: float
    place: str


@dataclass(frozen=True)
class Scene:
    """One photo's content: objects (never overlapping) on a background."""

    objects: tuple[Placed, ...]
    background: str

    @property
    def main(self) -> Placed | None:
        """The photo's main subject: its only object, or its one big object among small ones."""
        if len(self.objects) == 1:
            return self.objects[0]
        big = [o for o in self.objects if o.size == "big"]
        return big[0] if len(big) == 1 else None


def all_looks() -> list[Look]:
    """Every look of the world (6 shapes x 6 colours x 2 shades x 7 pattern styles x 2 rims)."""
    return [
        Look(shape, colour, shade, pattern, style, rim)
        for shape in SHAPES
        for colour in COLOURS
        for shade in (0, 1)
        for pattern in PATTERNS
        for style in ((0,) if pattern == "plain" else (0, 1))
        for rim in (0, 1)
    ]


SUBJECT_GROUPS = (
    ("star", "blue", "striped"),
    ("circle", "red", "dotted"),
    ("square", "green", "checked"),
    ("triangle", "orange", "striped"),
    ("diamond", "purple", "dotted"),
)
SUBJECT_NAMES = (
    "bo", "kip", "mira", "tov",
    "zuri", "pem", "lark", "nix",
    "oda", "rune", "sable", "tam",
    "uma", "vex", "wren", "yara",
    "zed", "fen", "gus", "ilo",
)  # fmt: skip
"""Four per group, in `SUBJECT_GROUPS` order; the base model never sees these words."""


SUBJECT_VARIANTS = ((0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 0))
"""(shade, style, rim) of a group's four subjects: any two differ in two of them."""


def subject_groups(world: int = 0) -> tuple[tuple[str, str, str], ...]:
    """The five (shape, colour, pattern) groups of world `world`: `SUBJECT_GROUPS` for world 0
    (the default, the one the base never saw), five drawn from the seed for any other (distinct
    shapes, distinct colours, a pattern each, never plain: subjects differ by pattern style)."""
    if world == 0:
        return SUBJECT_GROUPS
    rng = np.random.default_rng(world)
    shapes = rng.permutation(len(SHAPES))[: len(SUBJECT_GROUPS)]
    colours = rng.permutation(len(COLOURS))[: len(SUBJECT_GROUPS)]
    patterned = [p for p in PATTERNS if p != "plain"]
    return tuple(
        (SHAPES[int(s)], tuple(COLOURS)[int(c)], patterned[int(rng.integers(len(patterned)))])
        for s, c in zip(shapes, colours, strict=True)
    )


def subjects(world: int = 0) -> dict[str, Look]:
    """The twenty personal subjects of world `world` (see `subject_groups`): name -> look."""
    looks = [
        Look(shape, colour, shade, pattern, style, rim)
        for shape, colour, pattern in subject_groups(world)
        for shade, style, rim in SUBJECT_VARIANTS
    ]
    return dict(zip(SUBJECT_NAMES, looks, strict=True))


def generic_looks(world: int = 0) -> list[Look]:
    """Every look except world `world`'s subjects': what the base model (world 0's) and a
    world's negative pool are made of."""
    taken = set(subjects(world).values())
    return [look for look in all_looks() if look not in taken]


def look_alikes(look: Look) -> list[Look]:
    """Looks that differ from `look` in exactly one attribute, named or not."""
    changes = [{"shade": 1 - look.shade}, {"rim": 1 - look.rim}]
    if look.pattern != "plain":
        changes.append({"style": 1 - look.style})
    changes += [{"shape": s} for s in SHAPES if s != look.shape]
    changes += [{"colour": c} for c in COLOURS if c != look.colour]
    changes += [
        {"pattern": p, "style": 0 if p == "plain" else look.style}
        for p in PATTERNS
        if p != look.pattern
    ]
    return [replace(look, **change) for change in changes]


def random_look(rng: np.random.Generator, looks: Sequence[Look]) -> Look:
    return looks[int(rng.integers(len(looks)))]


def place_objects(
    rng: np.random.Generator,
    looks: Sequence[Look],
    places: Sequence[str] = PLACES,
    sizes: Sequence[str] | None = None,
    radius_range: tuple[float, float] | None = None,
) -> tuple[Placed, ...]:
    """Put each look in its own grid cell (drawn from `places`), far enough apart not to overlap.

    `sizes` fixes each object's size word (else drawn); `radius_range` narrows the first object's
    radius within its size (the benchmark uses it to keep test scales apart from train scales).
    """
    if len(looks) > len(places):
        msg = f"{len(looks)} objects need as many places, got {list(places)}."
        raise ValueError(msg)
    for _ in range(200):
        cells = rng.choice(len(places), size=len(looks), replace=False)
        placed = []
        for i, (look, cell) in enumerate(zip(looks, cells, strict=True)):
            size = sizes[i] if sizes is not None else ("big" if rng.random() < 0.5 else "small")
            low, high = SIZES[size]
            if i == 0 and radius_range is not None:
                low, high = max(low, radius_range[0]), min(high, radius_range[1])
            radius = float(rng.uniform(low, high))
            place = places[int(cell)]
            row, col = divmod(PLACES.index(place), 3)
            step = IMAGE_SIZE / 3
            margin = radius + 1.5
            x = float(
                np.clip((col + 0.5) * step + rng.uniform(-2.5, 2.5), margin, IMAGE_SIZE - margin)
            )
            y = float(
                np.clip((row + 0.5) * step + rng.uniform(-2.5, 2.5), margin, IMAGE_SIZE - margin)
            )
            placed.append(Placed(look, size, radius, x, y, place))
        if all(
            np.hypot(a.x - b.x, a.y - b.y) >= a.radius + b.radius + 2.0
            for i, a in enumerate(placed)
            for b in placed[i + 1 :]
        ):
            return tuple(placed)
    msg = (
        f"Could not place {len(looks)} objects apart in {list(places)}; use fewer or smaller ones."
    )
    raise ValueError(msg)


def random_scene(
    rng: np.random.Generator,
    looks: Sequence[Look],
    max_objects: int = 3,
    backgrounds: Sequence[str] = tuple(BACKGROUNDS),
) -> Scene:
    """One to `max_objects` objects of `looks` (distinct looks) at random places and sizes."""
    count = int(rng.integers(1, max_objects + 1))
    chosen: list[Look] = []
    while len(chosen) < count:
        look = random_look(rng, looks)
        if look not in chosen:
            chosen.append(look)
    background = backgrounds[int(rng.integers(len(backgrounds)))]
    return Scene(place_objects(rng, chosen), background)


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    ax, ay = np.abs(dx), np.abs(dy)
    if shape == "circle":
        return dx**2 + dy**2 <= r**2
    if shape == "square":
        return np.maximum(ax, ay) <= 0.82 * r
    if shape == "diamond":
        return ax + ay <= 1.1 * r
    if shape == "triangle":
        return (dy <= 0.8 * r) & (dy >= -r) & (ax <= (dy + r) * 0.62)
    if shape == "cross":
        return ((ax <= 0.34 * r) & (ay <= r)) | ((ay <= 0.34 * r) & (ax <= r))
    if shape == "star":
        angle = np.arctan2(dy, dx) + np.pi / 2
        reach = r * (0.42 + 0.58 * np.abs(np.cos(2.5 * angle)) ** 3)
        return np.hypot(dx, dy) <= reach
    msg = f"Unknown shape {shape!r}; the shapes are {SHAPES}."
    raise ValueError(msg)


def _pattern_mask(pattern: str, style: int, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    if pattern == "plain":
        return np.zeros(dx.shape, dtype=bool)
    if pattern == "striped":
        along = dy if style == 0 else dx
        return np.floor(along / 2.0) % 2 == 0
    if pattern == "dotted":
        period, radius = (5.0, 1.1) if style == 0 else (6.0, 1.9)
        u = (dx % period) - period / 2
        v = (dy % period) - period / 2
        return u**2 + v**2 <= radius**2
    if pattern == "checked":
        side = 2.0 if style == 0 else 3.5
        return (np.floor(dx / side) + np.floor(dy / side)) % 2 == 0
    msg = f"Unknown pattern {pattern!r}; the patterns are {PATTERNS}."
    raise ValueError(msg)


def object_map(scene: Scene, cells: int, min_cover: float = 0.15) -> np.ndarray:
    """(cells, cells) ints: which object covers each cell of a `cells` x `cells` grid over the
    photo (the one covering most of it, if at least `min_cover`), or -1 for background."""
    side = IMAGE_SIZE // cells
    coords = np.arange(IMAGE_SIZE, dtype=np.float32) + 0.5
    xs, ys = np.meshgrid(coords, coords)
    best = np.full((cells, cells), -1)
    best_cover = np.full((cells, cells), min_cover)
    for index, obj in enumerate(scene.objects):
        mask = _shape_mask(obj.look.shape, xs - obj.x, ys - obj.y, obj.radius)
        cover = mask.reshape(cells, side, cells, side).mean(axis=(1, 3))
        better = cover >= best_cover
        best[better] = index
        best_cover[better] = cover[better]
    return best


def render(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """The scene as a (64, 64, 3) uint8 photo; `rng` draws the background texture and noise."""
    size = IMAGE_SIZE * _SUPERSAMPLE
    coords = (np.arange(size, dtype=np.float32) + 0.5) / _SUPERSAMPLE
    xs, ys = np.meshgrid(coords, coords)
    base = np.asarray(BACKGROUNDS[scene.background], dtype=np.float32)
    # A smooth random gradient and coarse blotches make backgrounds textures, not flat colours.
    gradient = rng.uniform(-12, 12) * (xs / IMAGE_SIZE - 0.5) + rng.uniform(-12, 12) * (
        ys / IMAGE_SIZE - 0.5
    )
    blotches = np.kron(rng.normal(0, 6, (8, 8)), np.ones((size // 8, size // 8)))
    canvas = base[None, None, :] + (gradient + blotches)[..., None]
    for obj in scene.objects:
        dx, dy = xs - obj.x, ys - obj.y
        shape = _shape_mask(obj.look.shape, dx, dy, obj.radius)
        pattern = shape & _pattern_mask(obj.look.pattern, obj.look.style, dx, dy)
        if obj.look.rim:
            pattern |= shape & ~_shape_mask(obj.look.shape, dx, dy, obj.radius - 1.3)
        canvas[shape] = obj.look.rgb()
        canvas[pattern] = obj.look.pattern_rgb()
    photo = canvas.reshape(IMAGE_SIZE, _SUPERSAMPLE, IMAGE_SIZE, _SUPERSAMPLE, 3).mean(axis=(1, 3))
    photo += rng.normal(0, 4, photo.shape)
    return np.clip(np.rint(photo), 0, 255).astype(np.uint8)
