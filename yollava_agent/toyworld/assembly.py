"""The toyworld base LLaVA: the eye's tower and projector before the skills language model.

`assemble` builds one `LlavaForConditionalGeneration` from an eye run (`eye.py`: a
`CLIPVisionModel` and a llava-1.5 projector trained to put the language model's own slots at the
image tokens) and a language model that reads those slots (`symbolic.py`'s base, or one
continued by `skills.py`), with a
`LlavaProcessor` over the language model's tokenizer and llava-1.5's chat template. It loads
back with `load_llava(folder)` like any checkpoint: the product's prompts, concept injection,
trainer and scoring run on it unchanged.

`python -m yollava_agent.toyworld.assembly OUT --eye EYE --language-model LM` assembles it,
measures every task on rendered photos (`photo_accuracy`: the turns of `skills.py`, the photos
through the tower), optionally fine-tunes it end to end on photos (`--photo-steps`, resumable
from OUT/photo-checkpoint.pt: the language model and projector at the given learning rate, the
tower at a tenth, the same losses and supervised heads as the symbolic stages, every task of
`skills.py` by default, which is where the base first meets counting, attributes, places and
several reference photos; `--task-weight TASK=WEIGHT` changes one task's share;
`--statement-share` puts statements about other names before a share of the turns' questions,
`--statement-photo-share` of them a photo), and writes
OUT/llava (half precision) with `training.json`: the settings, every stage's log and the photo
accuracy of the written weights.
`--base FOLDER` instead of `--language-model` continues a written base (the committed
`weights/photos`, say) with another photo fine-tune, its earlier stages kept in the report; with
`--eye`, the base's tower and projector are first replaced by that eye's (one regressed onto the
base's own language model: `eye.py --language-model FOLDER`).

Chosen not to: train anything here when `--photo-steps` is 0 (the eye is regressed onto the
language model's slots, so the two are meant to fit as they are), or keep the eye's factor heads
(they are training aids; LLaVA has no place for them).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import (
    AutoTokenizer,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)

from yollava_agent.tiny import llava_processor
from yollava_agent.toyworld import skills, symbolic
from yollava_agent.toyworld.clip import pixels
from yollava_agent.toyworld.eye import PATCH_SIZE, Eye, load_eye
from yollava_agent.toyworld.folders import saved_folder
from yollava_agent.toyworld.symbolic import (
    IMAGE_TOKEN,
    Encoded,
    Turn,
    collate,
)
from yollava_agent.toyworld.world import IMAGE_SIZE, generic_looks, render

logger = logging.getLogger(__name__)

MIXES = {"skills": skills.TASK_WEIGHTS, "symbolic": symbolic.TASK_WEIGHTS}
"""Task mixes of the photo fine-tune: every task, or the symbolic base's own (recognition first)."""
PHOTO_EVAL_SEED = 21
PHOTO_EVAL_PER_TASK = 200


def assemble(eye: Eye, language_model: torch.nn.Module, tokenizer: object) -> LlavaForConditionalGeneration:
    """One LLaVA from the eye's tower and projector and the language model (weights copied)."""
    text = language_model.config
    config = LlavaConfig(
        vision_config=eye.tower.config,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        projector_hidden_act="gelu",
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    model = LlavaForConditionalGeneration(config)
    model.model.vision_tower.load_state_dict(eye.tower.state_dict())
    model.model.multi_modal_projector.load_state_dict(eye.projector.state_dict())
    model.model.language_model.load_state_dict(language_model.model.state_dict())
    model.lm_head.load_state_dict(language_model.lm_head.state_dict())
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.config._attn_implementation = "eager"
    return model.eval()


def build_processor(tokenizer: object) -> LlavaProcessor:
    """64-px photos in 16-px patches, CLIP's normalisation, llava-1.5's chat template."""
    return llava_processor(tokenizer, IMAGE_SIZE, PATCH_SIZE)


def photo_batch(
    items: Sequence[Encoded], turns: Sequence[Turn], rng: np.random.Generator, pad_id: int
) -> dict[str, torch.Tensor]:
    """`symbolic.collate` of the turns, plus their photos rendered (in order) as pixel values."""
    batch = collate(items, pad_id)
    photos = [render(scene, rng) for t in turns for scene in t.photos]
    if photos:
        batch["pixel_values"] = pixels(np.stack(photos))
    return batch


def llava_forward(
    model: LlavaForConditionalGeneration, batch: Mapping[str, torch.Tensor], attentions: bool
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
    """Last-layer hidden states (and the language model's attention weights when asked)."""
    out = model.model(
        input_ids=batch["input_ids"],
        pixel_values=batch.get("pixel_values"),
        attention_mask=batch["attention_mask"],
        output_attentions=attentions,
    )
    return out.last_hidden_state, out.attentions


@torch.inference_mode()
def judged_turns(
    model: LlavaForConditionalGeneration,
    tokenizer: object,
    turns: Sequence[Turn],
    rng: np.random.Generator,
    batch_size: int = 50,
) -> Iterator[tuple[Turn, Encoded, bool]]:
    """Each turn, its encoding and whether `model` answers it rightly (`skills.answer_hit`), its
    photos rendered with `rng` in order and seen through the tower."""
    encoder = skills.SkillEncoder(tokenizer)
    items = [encoder.encode(t) for t in turns]
    for start in range(0, len(items), batch_size):
        chunk = slice(start, start + batch_size)
        batch = photo_batch(items[chunk], turns[chunk], rng, tokenizer.pad_token_id)
        hidden, _ = llava_forward(model, batch, attentions=False)
        for row, (item, turn) in enumerate(zip(items[chunk], turns[chunk], strict=True)):
            yield turn, item, skills.answer_hit(model, hidden[row], item, turn.answer)


@torch.inference_mode()
def photo_accuracy(
    model: LlavaForConditionalGeneration,
    tokenizer: object,
    per_task: int,
    seed: int,
    tasks: Sequence[str] = skills.TASKS,
    prefixes: Sequence[str] = (),
    batch_size: int = 50,
    unasked_statements: bool = False,
) -> dict[str, float]:
    """Accuracy per task on held-out turns whose photos are rendered and seen through the tower
    (yes/no and letters by their first token, other answers when every token is the top one),
    per answer label of recognition tasks, and overall (`all`). `prefixes` (concept prompts) go,
    in turn, into successive turns where the chat model puts an active concept's prompt; with
    `unasked_statements`, every turn gets `skills.with_unasked_statements`'s, drawn apart from
    the turns, which stay those asked without."""
    looks = generic_looks()
    rng = np.random.default_rng(seed)
    statements_rng = np.random.default_rng([seed, 1])
    hits: dict[str, list[bool]] = defaultdict(list)
    model.eval()
    for kind in tasks:
        turns = [skills.skill_turn(rng, looks, kind) for _ in range(per_task)]
        if prefixes:
            turns = [
                skills.with_prefix(t, prefixes[i % len(prefixes)]) for i, t in enumerate(turns)
            ]
        if unasked_statements:
            turns = [skills.with_unasked_statements(statements_rng, t, looks) for t in turns]
        for _, item, hit in judged_turns(model, tokenizer, turns, rng, batch_size):
            hits[kind].append(hit)
            if item.label:
                hits[f"{kind}/{item.label}"].append(hit)
    result = {k: round(float(np.mean(v)), 4) for k, v in sorted(hits.items())}
    result["all"] = round(float(np.mean([h for k in tasks for h in hits[k]])), 4)
    return result


def photo_loss(
    model: LlavaForConditionalGeneration, batch: Mapping[str, torch.Tensor], pointer_weight: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """`symbolic.batch_loss` with the photos seen through the tower."""
    return symbolic.batch_loss(model, batch, pointer_weight, forward=llava_forward)


def fine_tune_on_photos(
    model: LlavaForConditionalGeneration,
    tokenizer: object,
    steps: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    eval_every: int,
    out: Path,
    eval_per_task: int = 100,
    mix: Mapping[str, float] = skills.TASK_WEIGHTS,
    count_shares: bool = False,
    choose_own_words: bool = False,
    statement_share: float = 0.0,
    statement_photo_share: float = 0.0,
) -> list[dict]:
    """End-to-end fine-tuning on rendered photos, turns drawn with `mix` (default: every task of
    `skills.TASK_WEIGHTS`; `MIXES`): language model and projector at `learning_rate`, the tower
    at a tenth, count turns' pointer target and two-choice turns' choose target as
    `skills.SkillEncoder(count_shares, choose_own_words)` sets them, `statement_share` of the
    turns with statements about names they never ask about (`skills.with_unasked_statements`,
    `statement_photo_share` of them a photo); returns the log. Every
    `eval_every` steps the held-out photo accuracy goes to `out/photo-log.jsonl` and the run to
    `out/photo-checkpoint.pt`, from which the same call resumes."""
    tower = list(model.model.vision_tower.parameters())
    tower_ids = {id(p) for p in tower}
    rest = [p for p in model.parameters() if id(p) not in tower_ids]
    optimizer = torch.optim.AdamW(
        [{"params": rest, "lr": learning_rate}, {"params": tower, "lr": learning_rate / 10}],
        weight_decay=0.01,
    )
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.45 * (1 + math.cos(math.pi * s / steps))),
    )
    encoder = skills.SkillEncoder(tokenizer, count_shares, choose_own_words)
    looks = generic_looks()
    rng = np.random.default_rng(seed)
    log: list[dict] = []
    first, minutes_before = 1, 0.0
    checkpoint_path = out / "photo-checkpoint.pt"
    state = symbolic.resume_run(checkpoint_path, model, optimizer, schedule, rng)
    if state is not None:
        log, first, minutes_before = state["log"], state["step"] + 1, state["minutes"]
        logger.warning("Resumed %s at photo step %d", out, state["step"])
    sums: dict[str, float] = defaultdict(float)
    started = time.monotonic()
    model.train()
    for step in range(first, steps + 1):
        turns = [skills.skill_turn(rng, looks, mix=mix) for _ in range(batch_size)]
        if statement_share:
            turns = [
                skills.with_unasked_statements(rng, t, looks, statement_photo_share)
                if rng.random() < statement_share
                else t
                for t in turns
            ]
        items = [encoder.encode(t) for t in turns]
        batch = photo_batch(items, turns, rng, tokenizer.pad_token_id)
        loss, parts = photo_loss(model, batch, 1.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        for k, v in parts.items():
            sums[k] += v
        if step % eval_every == 0 or step == steps:
            counted = eval_every if step % eval_every == 0 else step % eval_every
            record = {
                "step": step,
                "minutes": round(minutes_before + (time.monotonic() - started) / 60, 2),
                **{f"loss_{k}": round(v / counted, 4) for k, v in sums.items()},
                "accuracy": photo_accuracy(model, tokenizer, eval_per_task, seed + 7),
            }
            if statement_share:
                record["accuracy_with_statements"] = photo_accuracy(
                    model, tokenizer, eval_per_task, seed + 7, unasked_statements=True
                )
            model.train()
            sums.clear()
            log.append(record)
            with (out / "photo-log.jsonl").open("a") as handle:
                handle.write(json.dumps(record) + "\n")
            logger.warning("photo step %d %.1f min %s", step, record["minutes"], record["accuracy"])
            symbolic.save_run(
                checkpoint_path,
                model,
                optimizer,
                schedule,
                rng,
                step=step,
                minutes=record["minutes"],
                log=log,
            )
    model.eval()
    return log


def write_base(model: LlavaForConditionalGeneration, tokenizer: object, folder: Path, report: dict) -> None:
    """Write the LLaVA (half precision), its processor and `training.json` to `folder`, through a
    temporary sibling renamed into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        # A half copy: `model.half()` would also round the rotary frequencies in place, which
        # loading recomputes in float32, so the caller's model would no longer be the written one.
        copy.deepcopy(model).half().save_pretrained(staging)
        build_processor(tokenizer).save_pretrained(staging)
        (staging / "training.json").write_text(json.dumps(report, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_base(folder: Path) -> tuple[LlavaForConditionalGeneration, object, dict]:
    """A written base (float32, eval mode, eager attention for the heads' losses), its tokenizer
    and its `training.json`."""
    report_file = Path(folder) / "training.json"
    report = json.loads(report_file.read_text()) if report_file.is_file() else {}
    if "eye" not in report:
        msg = (
            f"--base {folder} is not a base written by assembly.py (no training.json recording "
            "an eye): pass such a folder, or assemble one with --eye and --language-model"
        )
        raise SystemExit(msg)
    model = LlavaForConditionalGeneration.from_pretrained(
        folder, dtype=torch.float32, attn_implementation="eager"
    )
    return model.eval(), AutoTokenizer.from_pretrained(folder), report


def _rounded(model: torch.nn.Module) -> None:
    """Round the weights to half precision in place (what the written checkpoint holds)."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(parameter.half().float())


def share(text: str) -> float:
    """An argparse type: a share of turns, from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        msg = f"{text!r} is not a share of turns: give a number from 0 to 1, e.g. 0.3"
        raise argparse.ArgumentTypeError(msg)
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write llava/ and photo-log.jsonl to")
    parser.add_argument(
        "--eye", type=saved_folder("checkpoint.pt"), help="an eye run folder (eye.py)"
    )
    parser.add_argument(
        "--language-model",
        type=saved_folder("config.json"),
        help="an exported language model (skills.py)",
    )
    parser.add_argument(
        "--base",
        type=saved_folder("config.json"),
        help="a written base to continue instead (assembly.py's OUT/llava)",
    )
    parser.add_argument("--photo-steps", type=int, default=0)
    parser.add_argument("--photo-batch", type=int, default=32)
    parser.add_argument("--photo-learning-rate", type=float, default=3e-4)
    parser.add_argument("--photo-mix", choices=sorted(MIXES), default="skills")
    parser.add_argument(
        "--task-weight",
        action="append",
        default=[],
        metavar="TASK=WEIGHT",
        help="change one task's weight in the photo mix (repeatable), e.g. count=0.3",
    )
    parser.add_argument(
        "--count-shares",
        action="store_true",
        help="count turns point at the sink and each counted object evenly (skills.py's)",
    )
    parser.add_argument(
        "--choose-own-words",
        action="store_true",
        help="the choose head attends to the right option's own words (skills.py's)",
    )
    parser.add_argument(
        "--statement-share",
        type=share,
        default=0.0,
        help="share of turns with statements about names they never ask about (skills.py's)",
    )
    parser.add_argument(
        "--statement-photo-share",
        type=share,
        default=0.0,
        help="share of those statements that show a photo instead of words",
    )
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--eval-per-task", type=int, default=PHOTO_EVAL_PER_TASK)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    return parser


def eye_record(folder: Path, state: dict) -> dict:
    """What a base's report keeps of its eye run: the settings, the step and the log."""
    log = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    return {"config": state["config"], "step": state["step"], "log": log}


def _assembled(args: argparse.Namespace) -> tuple[LlavaForConditionalGeneration, object, dict]:
    """The model to fine-tune, its tokenizer and the report of the stages before this one."""
    if args.base is not None:
        if args.language_model is not None:
            msg = "Pass either --base or --language-model, not both: a base brings its own"
            raise SystemExit(msg)
        model, tokenizer, earlier = load_base(args.base)
        kept = {"eye", "language_model"}
        continued = {"base": str(args.base)} | {k: v for k, v in earlier.items() if k not in kept}
        report = {k: earlier[k] for k in kept}
        if args.eye is not None:
            eye, eye_state = load_eye(args.eye)
            model.model.vision_tower.load_state_dict(eye.tower.state_dict())
            model.model.multi_modal_projector.load_state_dict(eye.projector.state_dict())
            continued["eye"] = earlier["eye"]
            report["eye"] = eye_record(args.eye, eye_state)
        return model, tokenizer, report | {"continued_from": continued}
    if args.eye is None or args.language_model is None:
        msg = "Name the eye run and the language model (--eye and --language-model), or --base"
        raise SystemExit(msg)
    eye, eye_state = load_eye(args.eye)
    language_model, tokenizer = symbolic.load_symbolic(args.language_model)
    lm_report = json.loads((args.language_model / "training.json").read_text())
    earlier = {
        "eye": eye_record(args.eye, eye_state),
        "language_model": {k: v for k, v in lm_report.items() if k != "held_out"}
        | {"held_out_symbolic": lm_report.get("held_out")},
    }
    return assemble(eye, language_model, tokenizer), tokenizer, earlier


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    mix = skills.task_mix(args.task_weight, MIXES[args.photo_mix])
    model, tokenizer, earlier = _assembled(args)
    started = time.monotonic()
    assembled = photo_accuracy(model, tokenizer, args.eval_per_task, PHOTO_EVAL_SEED)
    logger.warning("assembled: photo accuracy %s", assembled)
    args.out.mkdir(parents=True, exist_ok=True)
    photo_log = []
    if args.photo_steps:
        photo_log = fine_tune_on_photos(
            model,
            tokenizer,
            args.photo_steps,
            args.photo_batch,
            args.photo_learning_rate,
            args.seed,
            args.eval_every,
            args.out,
            mix=mix,
            count_shares=args.count_shares,
            choose_own_words=args.choose_own_words,
            statement_share=args.statement_share,
            statement_photo_share=args.statement_photo_share,
        )
    _rounded(model)
    final = photo_accuracy(model, tokenizer, args.eval_per_task, PHOTO_EVAL_SEED)
    logger.warning("written: photo accuracy %s", final)
    with_statements = {}
    if args.statement_share:
        with_statements = {
            "photo_accuracy_with_statements": photo_accuracy(
                model, tokenizer, args.eval_per_task, PHOTO_EVAL_SEED, unasked_statements=True
            )
        }
    report = earlier | {
        "photo_fine_tune": {
            "steps": args.photo_steps,
            "batch": args.photo_batch,
            "learning_rate": args.photo_learning_rate,
            "mix": args.photo_mix,
            "task_weights": args.task_weight,
            "count_shares": args.count_shares,
            "choose_own_words": args.choose_own_words,
            "statement_share": args.statement_share,
            "statement_photo_share": args.statement_photo_share,
            "log": photo_log,
        },
        "photo_accuracy_assembled": assembled,
        "photo_accuracy": {"per_task": args.eval_per_task, "seed": PHOTO_EVAL_SEED, "accuracy": final},
        **with_statements,
        "parameters": sum(p.numel() for p in model.parameters()),
        "minutes": round((time.monotonic() - started) / 60, 1),
        "torch": torch.__version__,
    }
    write_base(model, tokenizer, args.out / "llava", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
