"""Reading an evaluation dataset: concepts with train and test photos, descriptions, two-choice QA.

Layout (the Yo'LLaVA dataset's, one folder per subject):

```
DATASET/
  <concept>/train/*.png|jpg|...   photos to learn the concept from (3-10 work well)
  <concept>/test/*.png|jpg|...    held-out photos of it; also every other concept's negatives
  <concept>/description.txt       optional: a human-written description (the `description` method)
  qa.json                         optional: two-choice questions per concept
```

`qa.json` maps concept names to lists of questions:

```json
{
  "bo": [
    {"question": "What colour is <bo>?", "options": ["red", "blue"], "answer": 0},
    {"question": "Is <bo> on the sofa?", "options": ["yes", "no"], "answer": 1,
     "visual": true, "image": "test/3.png"}
  ]
}
```

- `question`: the question, naming the concept by its identifier `<name>` (as the Yo'LLaVA data
  writes `<sks>`); methods without trained tokens see the plain name instead.
- `options`: exactly two answers, shown to the model as "A." and "B.".
- `answer`: 0 or 1, the index of the right option.
- `image`: a photo path relative to the concept's folder (or absolute); it makes the question
  visual. `visual` (optional) must agree with it: `true` needs an image, `false` forbids one.

Every problem is reported once, as a `DatasetError` naming the file or field at fault, before
anything is trained. Photo files are identified by suffix (`IMAGE_SUFFIXES`); hidden files and
other files are ignored. Not done: recursing into sub-folders of train/ and test/, downloading
datasets, and holding decoded photos in memory (`read_photo` opens a file when it is needed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PIL import Image

from yollava_agent.concept import identifier_token, validate_concept_name
from yollava_agent.errors import ImageInputError, InvalidConceptNameError, YoLLaVAError
from yollava_agent.images import load_image
from yollava_agent.training.negatives import IMAGE_SUFFIXES

QA_FILE = "qa.json"
DESCRIPTION_FILE = "description.txt"
QA_FIELDS = ("question", "options", "answer", "visual", "image")


class DatasetError(YoLLaVAError, ValueError):
    """An evaluation dataset folder or file that does not follow the documented layout."""


@dataclass(frozen=True)
class QAItem:
    """One two-choice question about a concept."""

    question: str
    """The question, naming the concept as `<name>`."""
    options: tuple[str, str]
    answer: int
    """Index of the right option, 0 or 1."""
    image: Path | None = None
    """The photo the question is about; None for a text-only question."""
    where: str = ""
    """Where it came from (`qa.json: bo[2]`), for messages and reports."""

    @property
    def visual(self) -> bool:
        """True when the question comes with a photo."""
        return self.image is not None


@dataclass(frozen=True)
class EvalConcept:
    """One subject of the dataset."""

    name: str
    folder: Path
    train: tuple[Path, ...]
    test: tuple[Path, ...]
    description: str | None = None
    """The text of `description.txt`, when the dataset has one."""
    questions: tuple[QAItem, ...] = ()

    @property
    def visual_questions(self) -> list[QAItem]:
        return [q for q in self.questions if q.visual]

    @property
    def text_questions(self) -> list[QAItem]:
        return [q for q in self.questions if not q.visual]


@dataclass(frozen=True)
class EvalDataset:
    """A whole evaluation dataset, concepts sorted by name."""

    root: Path
    concepts: tuple[EvalConcept, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.concepts]

    def concept(self, name: str) -> EvalConcept:
        for concept in self.concepts:
            if concept.name == name:
                return concept
        msg = f"The dataset {self.root} has no concept {name!r}; it has {self.names}."
        raise DatasetError(msg)

    def others(self, name: str) -> list[EvalConcept]:
        """Every concept but `name`: its negatives."""
        return [c for c in self.concepts if c.name != name]


def read_photo(path: Path) -> Image.Image:
    """A dataset photo as RGB; a `DatasetError` naming the file when it cannot be read."""
    try:
        return load_image(path)
    except ImageInputError as e:
        msg = f"Photo {path} cannot be read: {e}"
        raise DatasetError(msg) from e


def _photos(folder: Path, check_images: bool) -> tuple[Path, ...]:
    if not folder.is_dir():
        msg = (
            f"{folder} is missing: every concept needs train/ and test/ folders of photos "
            f"(DATASET/<concept>/train/*, DATASET/<concept>/test/*)."
        )
        raise DatasetError(msg)
    photos = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not photos:
        msg = f"{folder} holds no photos (files ending in {', '.join(sorted(IMAGE_SUFFIXES))})."
        raise DatasetError(msg)
    if check_images:
        for photo in photos:
            read_photo(photo)
    return tuple(photos)


def _description(folder: Path) -> str | None:
    path = folder / DESCRIPTION_FILE
    if not path.exists():
        return None
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        msg = f"{path} cannot be read as UTF-8 text: {e}"
        raise DatasetError(msg) from e
    if not text:
        msg = f"{path} is empty: write the concept's description in it, or delete it."
        raise DatasetError(msg)
    return text


def _concept(folder: Path, check_images: bool) -> EvalConcept:
    try:
        name = validate_concept_name(folder.name)
    except InvalidConceptNameError as e:
        msg = f"{folder}: the folder name is not usable as a concept name: {e}"
        raise DatasetError(msg) from e
    return EvalConcept(
        name=name,
        folder=folder,
        train=_photos(folder / "train", check_images),
        test=_photos(folder / "test", check_images),
        description=_description(folder),
    )


def _qa_item(raw: Any, where: str, concept: EvalConcept, check_images: bool) -> QAItem:
    if not isinstance(raw, dict):
        msg = f"{where} must be an object with fields {', '.join(QA_FIELDS)}; got {raw!r}."
        raise DatasetError(msg)
    unknown = sorted(set(raw) - set(QA_FIELDS))
    if unknown:
        msg = f"{where} has unknown field {unknown[0]!r}; the fields are {', '.join(QA_FIELDS)}."
        raise DatasetError(msg)
    question = raw.get("question")
    if not isinstance(question, str) or not question.strip():
        msg = f"{where}.question must be a non-empty string, got {question!r}."
        raise DatasetError(msg)
    identifier = identifier_token(concept.name)
    if identifier not in question:
        msg = (
            f"{where}.question must name the concept as {identifier} (methods rewrite it to "
            f"their own way of naming it), got {question!r}."
        )
        raise DatasetError(msg)
    options = raw.get("options")
    if (
        not isinstance(options, list)
        or len(options) != 2
        or not all(isinstance(o, str) and o.strip() for o in options)
    ):
        msg = f"{where}.options must be a list of exactly two non-empty strings, got {options!r}."
        raise DatasetError(msg)
    answer = raw.get("answer")
    if isinstance(answer, bool) or answer not in (0, 1):
        msg = f"{where}.answer must be 0 or 1 (the index of the right option), got {answer!r}."
        raise DatasetError(msg)
    visual = raw.get("visual")
    if visual is not None and not isinstance(visual, bool):
        msg = f"{where}.visual must be true or false, got {visual!r}."
        raise DatasetError(msg)
    image_value = raw.get("image")
    image: Path | None = None
    if image_value is not None:
        if not isinstance(image_value, str) or not image_value.strip():
            msg = (
                f"{where}.image must be a photo path relative to {concept.folder}, "
                f"got {image_value!r}."
            )
            raise DatasetError(msg)
        image = concept.folder / image_value
        if not image.is_file():
            msg = f"{where}.image: no photo at {image}."
            raise DatasetError(msg)
        if check_images:
            read_photo(image)
    if visual is True and image is None:
        msg = f'{where}.visual is true but the question has no image: add an "image" path.'
        raise DatasetError(msg)
    if visual is False and image is not None:
        msg = f"{where}.visual is false but the question has an image {image_value!r}: drop one."
        raise DatasetError(msg)
    return QAItem(
        question=question.strip(),
        options=(options[0].strip(), options[1].strip()),
        answer=int(answer),
        image=image,
        where=where,
    )


def _questions(
    root: Path, concepts: dict[str, EvalConcept], check_images: bool
) -> dict[str, tuple[QAItem, ...]]:
    path = root / QA_FILE
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        msg = f"{path} is not UTF-8 text: {e}"
        raise DatasetError(msg) from e
    except json.JSONDecodeError as e:
        msg = f"{path} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}."
        raise DatasetError(msg) from e
    except OSError as e:
        msg = f"{path} cannot be read: {e}"
        raise DatasetError(msg) from e
    if not isinstance(raw, dict):
        msg = f"{path} must hold an object mapping concept names to lists of questions."
        raise DatasetError(msg)
    found: dict[str, tuple[QAItem, ...]] = {}
    for name, items in raw.items():
        if name not in concepts:
            msg = (
                f"{path}: concept {name!r} has no folder {root / name} (the dataset's concepts "
                f"are {sorted(concepts)})."
            )
            raise DatasetError(msg)
        if not isinstance(items, list):
            msg = f"{path}: {name} must be a list of questions, got {type(items).__name__}."
            raise DatasetError(msg)
        found[name] = tuple(
            _qa_item(item, f"{path}: {name}[{index}]", concepts[name], check_images)
            for index, item in enumerate(items)
        )
    return found


def load_dataset(root: str | Path, check_images: bool = True) -> EvalDataset:
    """Read and check a dataset folder (see the module docs for its layout).

    With `check_images` every photo is opened once, so an unreadable one is named now rather than
    after an hour of training.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        msg = f"Evaluation dataset {root} does not exist or is not a folder."
        raise DatasetError(msg)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        msg = (
            f"{root} has no concept folders: expected DATASET/<concept>/train/* and "
            "DATASET/<concept>/test/*."
        )
        raise DatasetError(msg)
    concepts = {c.name: c for c in (_concept(folder, check_images) for folder in folders)}
    if len(concepts) < 2:
        msg = (
            f"{root} has only one concept ({next(iter(concepts))}): its negatives are the other "
            "concepts' test photos, so an evaluation needs at least two."
        )
        raise DatasetError(msg)
    questions = _questions(root, concepts, check_images)
    return EvalDataset(
        root=root,
        concepts=tuple(replace(c, questions=questions.get(c.name, ())) for c in concepts.values()),
    )
